// Package configref generates the configuration reference
// (docs/configuration.md) from the typed configuration in configs/: every
// key, its type, its quickstart default and the doc comment of its field.
// The reference is never written by hand; a test fails when it is stale,
// and `go run ./internal/configref/gen -o docs/configuration.md` rewrites it.
package configref

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/acmebridge/acmebridge/configs"
)

// Key is one configuration key of the reference.
type Key struct {
	// Path is the dotted YAML path, "[]" after a list of sections.
	Path string
	// Type is the key's type as a user writes it.
	Type string
	// Default is the quickstart's value ("" when it is empty or depends
	// on the element of a list).
	Default string
	// Doc is the doc comment of the field (or of its type).
	Doc string
}

// source is what the parser found in configs/: the doc comment of each
// struct field and type.
type source struct {
	fieldDoc map[string]string // "Type.Field" → its own doc comment
	groupDoc map[string]string // "Type.Field" → the comment of its run of fields
	typeDoc  map[string]string
}

// parse reads the doc comments of the Go files in dir (tests excluded).
func parse(dir string) (*source, error) {
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, fmt.Errorf("configref: %w", err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("configref: %w", err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("configref: no Go file in %s", dir)
	}
	src := &source{fieldDoc: map[string]string{}, groupDoc: map[string]string{}, typeDoc: map[string]string{}}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc.Text()
				if doc == "" && len(gd.Specs) == 1 {
					doc = gd.Doc.Text()
				}
				src.typeDoc[ts.Name.Name] = clean(doc)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				// A comment above a run of fields (no blank line between
				// them) that names a later field documents it too:
				// "CertFile and KeyFile are …".
				group := ""
				prevLine := -1
				for _, fld := range st.Fields.List {
					line := fset.Position(fld.Pos()).Line
					d := clean(fld.Doc.Text())
					if d != "" {
						group = d
					} else if prevLine < 0 || line != prevLine+1 {
						group = ""
					}
					prevLine = fset.Position(fld.End()).Line
					for _, n := range fld.Names {
						src.fieldDoc[ts.Name.Name+"."+n.Name] = d
						if d == "" && containsWord(group, n.Name) {
							src.groupDoc[ts.Name.Name+"."+n.Name] = group
						}
					}
				}
			}
		}
	}
	return src, nil
}

// containsWord reports whether text names the Go identifier word.
func containsWord(text, word string) bool {
	for _, f := range strings.FieldsFunc(text, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		if f == word {
			return true
		}
	}
	return false
}

// clean joins a doc comment's lines into one paragraph.
func clean(doc string) string {
	return strings.Join(strings.Fields(doc), " ")
}

// Keys walks the configuration types from configs.Config, reading doc
// comments from the sources in dir (the configs package directory).
func Keys(dir string) ([]Key, error) {
	src, err := parse(dir)
	if err != nil {
		return nil, err
	}
	def, err := configs.Load("")
	if err != nil {
		return nil, fmt.Errorf("configref: the quickstart does not load: %w", err)
	}
	var keys []Key
	walk(src, reflect.TypeOf(configs.Config{}), reflect.ValueOf(*def), "", &keys)
	return keys, nil
}

var durationType = reflect.TypeOf(configs.Duration(0))

// walk appends the keys of struct type t (whose quickstart value is v, or
// invalid inside a list) under prefix.
func walk(src *source, t reflect.Type, v reflect.Value, prefix string, keys *[]Key) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		path := prefix + tag
		doc := src.fieldDoc[t.Name()+"."+f.Name]
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if fv.IsValid() {
				fv = fv.Elem()
			}
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			// A section's own comment, else its type's.
			if doc == "" {
				doc = src.typeDoc[ft.Name()]
			}
			if doc != "" {
				*keys = append(*keys, Key{Path: path, Type: "section", Doc: doc})
			}
			walk(src, ft, fv, path+".", keys)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			if doc == "" {
				doc = src.typeDoc[ft.Elem().Name()]
			}
			*keys = append(*keys, Key{Path: path, Type: "list of sections", Default: format(fv), Doc: doc})
			walk(src, ft.Elem(), reflect.Value{}, path+"[].", keys)
		default:
			if doc == "" {
				doc = src.groupDoc[t.Name()+"."+f.Name]
			}
			*keys = append(*keys, Key{Path: path, Type: typeName(ft), Default: format(fv), Doc: doc})
		}
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "integer"
	default:
		return t.Kind().String()
	}
}

// format writes a quickstart value as YAML on one line; "" when zero.
func format(v reflect.Value) string {
	if !v.IsValid() || v.IsZero() {
		return ""
	}
	if v.Type() == durationType {
		return shortDuration(v.Interface().(configs.Duration).D().String())
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return fmt.Sprint(v.Interface())
	}
	flow(&n)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return shortDuration(strings.TrimSpace(string(b)))
}

// zeroUnits are the trailing zero units time.Duration.String writes.
var zeroUnits = regexp.MustCompile(`([0-9]+[hm])0m0s|([0-9]+m)0s`)

// shortDuration writes "24h0m0s" as "24h" and "1m0s" as "1m".
func shortDuration(s string) string { return zeroUnits.ReplaceAllString(s, "$1$2") }

// flow turns a YAML node tree into flow style, dropping empty values.
func flow(n *yaml.Node) {
	n.Style = yaml.FlowStyle
	if n.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if empty(val) {
				continue
			}
			flow(val)
			kept = append(kept, k, val)
		}
		n.Content = kept
		return
	}
	for _, c := range n.Content {
		flow(c)
	}
}

func empty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				if !empty(n.Content[i]) {
					return false
				}
			}
			return true
		}
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Value == "" || n.Value == "0" || n.Value == "false" || n.Value == "0s" || n.Tag == "!!null"
	}
	return false
}

// Undocumented lists the keys without a doc comment.
func Undocumented(keys []Key) []string {
	var out []string
	for _, k := range keys {
		if k.Doc == "" {
			out = append(out, k.Path)
		}
	}
	sort.Strings(out)
	return out
}

// Markdown renders the reference.
func Markdown(keys []Key) string {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated by `go run ./internal/configref/gen -o docs/configuration.md` from the doc comments of configs/; do not edit by hand. -->\n\n")
	b.WriteString("One YAML file, decoded strictly (an unknown key is an error naming the key and its line) and validated once at start. ")
	b.WriteString("A key the file omits keeps the quickstart's value, shown in the *default* column (`acmebridge serve` with no flags runs exactly these values; ")
	b.WriteString("[`configs/quickstart.yaml`](../configs/quickstart.yaml) writes them out). ")
	b.WriteString("Two exceptions: a file that sets `policy` without `policy.default` denies what no rule matches, and a file that does not set ")
	b.WriteString("`validation.allow_private_addresses` denies private addresses. Durations are written `90s`, `24h`. Paths under `data_dir` are derived from it.\n\n")
	section := ""
	for _, k := range keys {
		top, _, _ := strings.Cut(k.Path, ".")
		top = strings.TrimSuffix(top, "[]")
		if top != section {
			section = top
			fmt.Fprintf(&b, "\n## `%s`\n\n| key | type | default | meaning |\n|---|---|---|---|\n", section)
		}
		def := ""
		if k.Default != "" {
			def = "`" + strings.ReplaceAll(k.Default, "|", `\|`) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Path, k.Type, def, strings.ReplaceAll(k.Doc, "|", `\|`))
	}
	return b.String()
}
