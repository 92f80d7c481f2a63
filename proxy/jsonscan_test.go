package proxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScanJSON: the one scan every request body, protected header and
// payload goes through accepts exactly one JSON value, refuses a name twice
// in any object (also when escaped differently) and nesting past
// maxJSONDepth, and reports a top-level object's members with the kinds
// parseJWS decides on.
func TestScanJSON(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{``, false}, {`   `, false}, {`{}`, true}, {" {}\n", true}, {`{}{}`, false}, {`{} x`, false},
		{`1`, true}, {`"a"`, true}, {`{"a":}`, false},
		{`{"a":1,"a":2}`, false}, {`{"a":1,"\u0061":2}`, false}, {`{"a":{"b":1,"b":2}}`, false},
		{`[{"a":1},{"a":1}]`, true}, {`{"a":[1,2,{"c":3}],"b":null}`, true},
		{"{\"a\":\"\xff\"}", true}, // invalid UTF-8 is read as encoding/json reads it
		{strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), true},
		{strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), false},
	} {
		err := checkUniqueKeys([]byte(c.in))
		require.Equal(t, c.ok, err == nil, "%q: %v", c.in, err)
	}
	require.EqualError(t, checkUniqueKeys([]byte(`{"a":1,"a":2}`)), `duplicate member name "a"`)

	var got []string
	kinds := map[jsonKind]string{jsonOther: "other", jsonString: "string", jsonNull: "null"}
	require.NoError(t, scanJSON([]byte(`{"p":"x","q":null,"r":{"s":"t"},"u":[1],"v":5,"w":"y"}`), func(n string, k jsonKind, s string) {
		got = append(got, n+" "+kinds[k]+" "+s)
	}))
	require.Equal(t, []string{"p string x", "q null ", "r other ", "u other ", "v other ", "w string y"}, got)
}
