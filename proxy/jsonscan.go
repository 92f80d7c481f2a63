package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// maxJSONDepth bounds the nesting of a JSON value checkUniqueKeys walks:
// ACME objects nest four levels at most (an EAB's JWS inside newAccount).
const maxJSONDepth = 32

// checkUniqueKeys refuses a JSON value in which an object has the same
// member name twice, or which nests deeper than maxJSONDepth. RFC 8259 §4:
// "The names within an object SHOULD be unique. ... When the names within an
// object are not unique, the behavior of software that receives such an
// object is unpredictable." encoding/json keeps the last duplicate, go-jose
// refuses them, a proxy or log in front of us may keep the first: a payload
// read differently by two parsers (e.g. two "identifiers", one of them
// forbidden) is refused as malformed, as RFC 7515 §4 allows for headers.
// Names are compared after unescaping, so "a" and "\u0061" are the same.
func checkUniqueKeys(b []byte) error {
	if err := scanJSON(b, nil); err != nil {
		if errors.Is(err, errJSONSyntax) {
			return errors.New("invalid JSON")
		}
		return err
	}
	return nil
}

// errJSONSyntax is scanJSON's error for input that is not one JSON value.
var errJSONSyntax = errors.New("not JSON")

// jsonKind is the kind of a top-level member's value scanJSON reports.
type jsonKind int

const (
	jsonOther jsonKind = iota
	jsonString
	jsonNull
)

// scanJSON reads b, which must be exactly one JSON value, once with
// jsontext's decoder, which refuses duplicate names at any depth (after
// unescaping) as it reads. It returns errJSONSyntax if b is not one JSON
// value, an error naming the duplicate name or the excess nesting
// (checkUniqueKeys), or nil. When b is an object and top is not nil, top is
// called with each of its members: its name, the kind of its value and,
// for a string, the string. Strings need not be valid UTF-8, as for
// encoding/json and go-jose, which read what this scan passes.
func scanJSON(b []byte, top func(name string, kind jsonKind, s string)) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowInvalidUTF8(true))
	var name string
	ended := false // the one value was read
	for {
		tok, err := dec.ReadToken()
		switch {
		case errors.Is(err, io.EOF) && ended:
			return nil
		case err == nil && ended:
			// The decoder reads a stream of values; RFC 8259 §2:
			// "JSON-text = ws value ws".
			return errJSONSyntax
		case errors.Is(err, jsontext.ErrDuplicateName):
			var se *jsontext.SyntacticError
			if errors.As(err, &se) {
				return fmt.Errorf("duplicate member name %s", acmeerr.Quote(se.JSONPointer.LastToken()))
			}
			return errors.New("duplicate member name")
		case err != nil:
			return errJSONSyntax
		}
		depth := dec.StackDepth()
		ended = depth == 0
		if depth > maxJSONDepth {
			return fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
		}
		if top == nil {
			continue
		}
		switch k := tok.Kind(); {
		case depth == 2 && (k == '{' || k == '['):
			// A member's object or array value begins.
			if pk, _ := dec.StackIndex(1); pk == '{' {
				top(name, jsonOther, "")
			}
		case depth == 1 && k != '{' && k != '[' && k != '}' && k != ']':
			// A name or a value that is no object or array (not the
			// object's own '{', nor the end of a member's value).
			pk, n := dec.StackIndex(1)
			switch {
			case pk != '{':
			case n%2 == 1:
				name = tok.String()
			case k == '"':
				top(name, jsonString, tok.String())
			case k == 'n':
				top(name, jsonNull, "")
			default:
				top(name, jsonOther, "")
			}
		}
	}
}

// flatFields is what scanFlatJWS found in a Flattened JSON Serialization
// (RFC 7515 §7.2.2): the protected header's text, and which members are
// present (a member whose value is null counts as absent); refused is a
// member "protected", "payload" or "signature" that is no string, or a JWS
// member name in another case.
type flatFields struct {
	protected                   *string
	payload, signature          bool
	header, signatures, refused bool
}

// jwsMembers are the member names of a JWS in JSON serialization (RFC 7515
// §7.2.1).
var jwsMembers = []string{"protected", "payload", "signature", "header", "signatures"}

// scanFlatJWS scans a request body: one JSON object whose "protected",
// "payload" and "signature" are strings when present, with no name twice
// at any depth, and none of the JWS member names in another case.
func scanFlatJWS(body []byte) (*flatFields, error) {
	var f flatFields
	err := scanJSON(body, func(name string, kind jsonKind, s string) {
		// RFC 7515 names are case-sensitive, but encoding/json and
		// go-jose match them folding case (and "ſ" to "s", as
		// strings.EqualFold does): "Protected" or "ſignatures" would be
		// read by go-jose and not by this scan.
		for _, m := range jwsMembers {
			if name != m && strings.EqualFold(name, m) {
				f.refused = true
				return
			}
		}
		if kind == jsonNull {
			return
		}
		switch name {
		case "protected", "payload", "signature":
			if kind != jsonString {
				f.refused = true
				return
			}
			switch name {
			case "protected":
				f.protected = &s
			case "payload":
				f.payload = true
			default:
				f.signature = true
			}
		case "header":
			f.header = true
		case "signatures":
			f.signatures = true
		}
	})
	notJWS := acmeerr.New(acmeerr.Malformed, "request body is not a JWS in JSON serialization")
	switch {
	case errors.Is(err, errJSONSyntax), err == nil && f.refused:
		return nil, notJWS
	case err != nil:
		return nil, acmeerr.New(acmeerr.Malformed, "JWS: %s", err)
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, notJWS
	}
	return &f, nil
}
