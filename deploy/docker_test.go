package deploy_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// dockerInstr is one Dockerfile instruction with its continuation lines
// joined.
type dockerInstr struct {
	Op   string // upper case: FROM, RUN, COPY...
	Args string
}

func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{Op: strings.ToUpper(op), Args: strings.TrimSpace(args)})
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	require.Zero(t, cur.Len(), "Dockerfile ends inside a continued line")
	return out
}

// shellWords splits a simple shell command line: words separated by
// blanks, double and single quotes group. It fails on anything it does
// not understand (so the test notices a command it cannot reproduce).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	require.NotContains(t, s, "&&", "the go build RUN must be one command")
	require.NotContains(t, s, "$(", "no command substitution in the go build RUN")
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	require.Zero(t, quote, "unterminated quote in %q", s)
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// dockerignore reads the patterns of .dockerignore (Docker's syntax without
// exceptions and **, which the test refuses rather than misreads).
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(l, "!") || strings.Contains(l, "**"), "the test does not model %q", l)
		pats = append(pats, filepath.Clean(strings.TrimPrefix(l, "/")))
	}
	return pats
}

// ignored reports whether rel (slash-separated, relative to the context)
// is left out of the build context: a pattern matching it or one of its
// parent directories.
func ignored(t *testing.T, pats []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		for _, p := range pats {
			ok, err := filepath.Match(p, prefix)
			require.NoError(t, err, "pattern %q", p)
			if ok {
				return true
			}
		}
	}
	return false
}

// buildContext copies the repository into a fresh directory the way
// `docker build .` sends it: without what .dockerignore leaves out.
func buildContext(t *testing.T) string {
	t.Helper()
	pats := dockerignore(t)
	dst := t.TempDir()
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if ignored(t, pats, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil // symlinks and the like: none in the Go sources
	})
	require.NoError(t, err)
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestDockerfile builds the image's binary the way the Dockerfile's build
// stage does (its RUN go build line, run as written in a copy of the build
// context filtered by .dockerignore) and checks what the final stage relies
// on: a static binary, the baked-in config accepted, the exposed ports and
// the volume matching that config. No image is built: there is no
// container engine here.
func TestDockerfile(t *testing.T) {
	instrs := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	require.NoError(t, err)
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goVer, "no go directive in go.mod")
	var froms, copies []string
	var buildRun, user, entry, cmd, volume string
	var exposed []string
	args := map[string]string{}
	for _, in := range instrs {
		switch in.Op {
		case "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case "FROM":
			froms = append(froms, in.Args)
		case "RUN":
			if strings.Contains(in.Args, "go build") {
				require.Empty(t, buildRun, "one go build RUN")
				buildRun = in.Args
			}
		case "COPY":
			copies = append(copies, in.Args)
		case "USER":
			user = in.Args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.Args)...)
		case "VOLUME":
			volume = in.Args
		case "ENTRYPOINT":
			entry = in.Args
		case "CMD":
			cmd = in.Args
		}
	}
	require.Equal(t, string(goVer[1]), args["GO_VERSION"], "ARG GO_VERSION must match go.mod's go directive")
	require.Len(t, froms, 2, "a build stage and a final stage")
	require.Equal(t, "golang:${GO_VERSION}-bookworm AS build", froms[0])
	require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", froms[1], "the final stage is distroless static, non-root")
	require.Equal(t, "nonroot:nonroot", user)
	require.Equal(t, `["/usr/bin/acmebridge"]`, entry)
	require.Equal(t, `["serve", "--config", "/etc/acmebridge/config.yaml"]`, cmd)
	require.Contains(t, copies, "deploy/docker/config.yaml /etc/acmebridge/config.yaml")

	// The build context holds what the COPY lines and go build need.
	ctxDir := buildContext(t)
	for _, f := range []string{"go.mod", "go.sum", "deploy/docker/config.yaml", "cmd/acmebridge/main.go"} {
		require.FileExists(t, filepath.Join(ctxDir, f), ".dockerignore leaves out %s", f)
	}
	require.NoFileExists(t, filepath.Join(ctxDir, "bin", "acmebridge"))

	// The go build line, run as written (VERSION and the output replaced).
	words := shellWords(t, strings.ReplaceAll(buildRun, "${VERSION}", "9.8.7-docker"))
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	require.Contains(t, env, "CGO_ENABLED=0")
	require.GreaterOrEqual(t, len(words), 3)
	require.Equal(t, []string{"go", "build"}, words[:2])
	require.Contains(t, words, "-trimpath")
	out := filepath.Join(t.TempDir(), "acmebridge")
	for i, w := range words {
		if w == "-o" {
			require.Equal(t, "/out/acmebridge", words[i+1])
			words[i+1] = out
		}
	}
	o, code := runCmd(t, append(os.Environ(), append(env, "GOFLAGS=", "GOWORK=off")...), ctxDir, words[0], words[1:]...)
	require.Equal(t, 0, code, "%s\n%s", buildRun, o)

	o, code = runCmd(t, nil, "", out, "version")
	require.Equal(t, 0, code, o)
	require.Equal(t, "acmebridge 9.8.7-docker\n", o)

	// distroless/static has no libc: the binary must not need a loader.
	f, err := elf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary is dynamically linked")
	}
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte(ctxDir)), "-trimpath: the build directory is in the binary")

	// The baked-in config: accepted, listening on the exposed ports, its
	// data in the volume.
	requireConfigOK(t, "docker/config.yaml")
	var dc struct {
		DataDir string `yaml:"data_dir"`
		Server  struct {
			Listen string `yaml:"listen"`
		} `yaml:"server"`
		Admin struct {
			Listen string `yaml:"listen"`
		} `yaml:"admin"`
	}
	b, err := os.ReadFile("docker/config.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &dc))
	require.Equal(t, `["`+dc.DataDir+`"]`, volume)
	var ports []string
	for _, l := range []string{dc.Server.Listen, dc.Admin.Listen} {
		host, port, err := net.SplitHostPort(l)
		require.NoError(t, err)
		require.Empty(t, host, "%s: a container listens on every interface", l)
		ports = append(ports, port)
	}
	require.Equal(t, ports, exposed)
}
