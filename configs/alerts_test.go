package configs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The alerting rules (alerts.yaml) are Prometheus' format, not a config of
// ours: promtool checks and unit-tests them (testdata/alerts_test.yml), and
// the tests below hold them to the conventions the runbooks rely on.
// test/alerts_e2e_test.go checks that every metric they use is exported.

const (
	alertsFile     = "alerts.yaml"
	alertsTestFile = "testdata/alerts_test.yml"
	runbooksFile   = "../docs/runbooks.md"
	runbookBase    = "https://github.com/acmebridge/acmebridge/blob/main/docs/runbooks.md#"
)

// promtool returns the path of promtool. It is not optional: `make deps`
// installs it (Debian package prometheus), and CI has it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): run `make deps`, or `apt-get install prometheus`; "+
			"it checks and unit-tests configs/alerts.yaml", err)
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "promtool %s:\n%s", strings.Join(args, " "), out.String())
	return out.String()
}

// TestAlertsPromtoolCheck: promtool check rules accepts the file.
func TestAlertsPromtoolCheck(t *testing.T) {
	out := runPromtool(t, "check", "rules", alertsFile)
	require.Contains(t, out, "SUCCESS")
}

// TestAlertsPromtoolUnitTests: every alert fires on the series that should
// fire it, with its labels and rendered annotations, and not otherwise.
func TestAlertsPromtoolUnitTests(t *testing.T) {
	out := runPromtool(t, "test", "rules", alertsTestFile)
	require.Contains(t, out, "SUCCESS")
}

// ruleFile is the part of a Prometheus rule file the conventions check.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var f ruleFile
	require.NoError(t, yaml.Unmarshal(b, &f))
	require.NotEmpty(t, f.Groups)
	return f
}

// headingAnchor is GitHub's anchor of a Markdown heading: lower case,
// punctuation dropped, spaces to hyphens.
func headingAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// TestAlertsConventions: every alert has a severity the routing knows, a
// summary and description, and a runbook_url pointing at its own section
// of docs/runbooks.md; every section there is an alert's.
func TestAlertsConventions(t *testing.T) {
	f := loadAlerts(t)
	doc, err := os.ReadFile(runbooksFile)
	require.NoError(t, err)
	var sections []string
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			sections = append(sections, headingAnchor(h))
		}
	}
	var alerts []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: only alerting rules here", g.Name)
			require.NotContains(t, alerts, r.Alert, "alert names are unique")
			alerts = append(alerts, r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s: severity", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
			require.NotEmpty(t, r.Annotations["description"], "%s: description", r.Alert)
			anchor := headingAnchor(r.Alert)
			require.Equal(t, runbookBase+anchor, r.Annotations["runbook_url"], "%s: runbook_url is its own section", r.Alert)
			require.Contains(t, sections, anchor, "%s: docs/runbooks.md has a section ## %s", r.Alert, r.Alert)
		}
	}
	for _, s := range sections {
		require.True(t, slices.ContainsFunc(alerts, func(a string) bool { return headingAnchor(a) == s }),
			"docs/runbooks.md section #%s belongs to no alert", s)
	}
}

// TestAlertsEveryAlertUnitTested: the promtool tests make every alert fire
// at some evaluation and expect silence at another.
func TestAlertsEveryAlertUnitTested(t *testing.T) {
	f := loadAlerts(t)
	b, err := os.ReadFile(alertsTestFile)
	require.NoError(t, err)
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(b, &tests))
	require.Equal(t, []string{"../" + alertsFile}, tests.RuleFiles)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			require.True(t, fires[r.Alert], "%s: no test makes it fire", r.Alert)
			require.True(t, quiet[r.Alert], "%s: no test expects it quiet", r.Alert)
		}
	}
}
