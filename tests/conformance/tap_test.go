package conformance

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tapReport is what one validation program printed. Its output fails when
// a point fails (TODO excepted), it bails out, the points do not match the
// plan, or it prints an "error" diagnostic outside any point (the hook
// programs report that way, with no points at all).
type tapReport struct {
	plan     int // -1: no plan line
	ok       int // "ok" points, SKIP included
	skip     int
	total    int
	failures []string // why the output fails, line by line
}

var (
	pointLine = regexp.MustCompile(`^(not )?ok\b`)
	planLine  = regexp.MustCompile(`^1\.\.(\d+)`)
	directive = regexp.MustCompile(`(?i)#\s*(skip|todo)\b`)
)

// maxDiagLines bounds how much of a failing point's diagnostic is quoted.
const maxDiagLines = 6

// parseTAP reads TAP version 13 as printed by the suite's tap-go: test
// points, a plan (at the end), "Bail out!", and YAML diagnostics indented by
// two spaces between "---" and "...". The suite writes its diagnostics as
// JSON inside those markers, and point descriptions may go on over several
// lines. Some programs print more than one TAP document (each starting with
// "TAP version"); each must match its own plan, and plan and points are
// summed over all of them.
func parseTAP(out string) tapReport {
	r := tapReport{plan: -1}
	// Per document: its plan and points, and whether a diagnostic block
	// would belong to a point (the hook programs report through
	// diagnostics printed before any point) and to a failing one.
	docPlan, docPoints := -1, 0
	afterPoint, lastPointFailed := false, false
	endDoc := func() {
		switch {
		case docPlan >= 0 && docPlan != docPoints:
			r.failures = append(r.failures, "plan 1.."+strconv.Itoa(docPlan)+" but "+strconv.Itoa(docPoints)+" points")
		case docPlan < 0 && docPoints > 0:
			r.failures = append(r.failures, "no plan line after "+strconv.Itoa(docPoints)+" points")
		}
		if docPlan >= 0 {
			r.plan = max(r.plan, 0) + docPlan
		}
		docPlan, docPoints = -1, 0
		afterPoint, lastPointFailed = false, false
	}
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		switch {
		case strings.HasPrefix(line, "TAP version"):
			if i > 0 {
				endDoc()
			}
		case pointLine.MatchString(line):
			r.total++
			docPoints++
			d := directive.FindStringSubmatch(line)
			failed := strings.HasPrefix(line, "not ")
			switch {
			case !failed:
				r.ok++
				if d != nil && strings.EqualFold(d[1], "skip") {
					r.skip++
				}
			case d != nil && strings.EqualFold(d[1], "todo"):
				// A known failure the suite itself marks as such.
				failed = false
			default:
				r.failures = append(r.failures, line)
			}
			afterPoint, lastPointFailed = true, failed
		case strings.TrimSpace(line) == "---" && strings.HasPrefix(line, " "):
			var block []string
			for i++; i < len(lines); i++ {
				if strings.TrimSpace(lines[i]) == "..." {
					break
				}
				block = append(block, strings.TrimSpace(lines[i]))
			}
			switch {
			case afterPoint && lastPointFailed:
				r.failures = append(r.failures, quoteDiag(block)...)
			case !afterPoint:
				if msg := diagError(block); msg != "" {
					r.failures = append(r.failures, "error diagnostic: "+firstLine(msg))
				}
			}
		case strings.HasPrefix(line, "Bail out!"):
			r.failures = append(r.failures, line)
			afterPoint = false
		case planLine.MatchString(line):
			n, err := strconv.Atoi(planLine.FindStringSubmatch(line)[1])
			if err != nil {
				r.failures = append(r.failures, "bad plan: "+line)
				continue
			}
			docPlan = n
			afterPoint = false
		}
	}
	endDoc()
	return r
}

// diagError returns the "error" entry of a diagnostic block, or "".
func diagError(block []string) string {
	var m map[string]any
	if json.Unmarshal([]byte(strings.Join(block, "\n")), &m) == nil {
		s, _ := m["error"].(string)
		return strings.TrimSpace(s)
	}
	// Not JSON: accept YAML's `error: text` too.
	for _, l := range block {
		if v, ok := strings.CutPrefix(l, "error:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// quoteDiag condenses a failing point's diagnostic into a few indented
// lines: the JSON values that say what went wrong.
func quoteDiag(block []string) []string {
	var m map[string]any
	var out []string
	if json.Unmarshal([]byte(strings.Join(block, "\n")), &m) == nil {
		for _, k := range []string{"error", "stderr", "expected", "actual"} {
			if v, ok := m[k]; ok {
				s := strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " | "))
				if s != "" {
					out = append(out, "    "+k+": "+s)
				}
			}
		}
	} else {
		for _, l := range block {
			if len(out) == maxDiagLines {
				break
			}
			out = append(out, "    "+l)
		}
	}
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func TestParseTAP(t *testing.T) {
	for _, tc := range []struct {
		name                string
		out                 string
		plan, ok, skip, all int
		failures            int
	}{
		{"pass", "TAP version 13\nok 1 - a\n  ---\n  {\n    \"error\": \"exit status 1\"\n  }\n  ...\nok 2 # SKIP no blkio\n1..2\n", 2, 2, 1, 2, 0},
		{"not ok", "TAP version 13\nok 1 - a\nnot ok 2 - b\n  ---\n  {\n    \"error\": \"boom\",\n    \"reference\": \"x\"\n  }\n  ...\n1..2\n", 2, 1, 0, 2, 2},
		{"todo is not a failure", "not ok 1 - a # TODO later\n1..1\n", 1, 0, 0, 1, 0},
		{"plan mismatch", "ok 1\n1..3\n", 3, 1, 0, 1, 1},
		{"no plan", "ok 1\nok 2\n", -1, 2, 0, 2, 1},
		{"bail out", "ok 1\nBail out! no runtime\n", -1, 1, 0, 1, 2},
		{"orphan error diagnostic", "TAP version 13\n  ---\n  {\n    \"error\": \"Hooks MUST be called in order\\nRefer to: x\"\n  }\n  ...\n1..0\n", 0, 0, 0, 0, 1},
		{"orphan diagnostic without error", "TAP version 13\n  ---\n  {\n    \"note\": \"fine\"\n  }\n  ...\n1..0\n", 0, 0, 0, 0, 0},
		{"empty error on a passing point", "ok 1 - a\n  ---\n  {\n    \"error\": \"\"\n  }\n  ...\n1..1\n", 1, 1, 0, 1, 0},
		{"description on two lines", "not ok 1 - a\nRefer to: x\n  ---\n  {\"error\": \"x\"}\n  ...\n1..1\n", 1, 0, 0, 1, 2},
		{"diagnostic of a passing point after two lines", "ok 1 - a\nRefer to: x\n  ---\n  {\"error\": \"x\"}\n  ...\n1..1\n", 1, 1, 0, 1, 0},
		{"two documents", "TAP version 13\nok 1\nok 2\n1..2\nTAP version 13\n1..0\n", 2, 2, 0, 2, 0},
		{"second document short", "TAP version 13\nok 1\n1..1\nTAP version 13\nok 1\n1..2\n", 3, 2, 0, 2, 1},
		{"output before the first point", "TAP version 13\nfailed to create the container\n  ---\n  {\"error\": \"hook failed\"}\n  ...\n1..0\n", 0, 0, 0, 0, 1},
		{"nothing printed", "", -1, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseTAP(tc.out)
			if r.plan != tc.plan || r.ok != tc.ok || r.skip != tc.skip || r.total != tc.all || len(r.failures) != tc.failures {
				t.Errorf("parseTAP = plan %d ok %d skip %d total %d failures %q; want plan %d ok %d skip %d total %d, %d failures",
					r.plan, r.ok, r.skip, r.total, r.failures, tc.plan, tc.ok, tc.skip, tc.all, tc.failures)
			}
		})
	}
	r := parseTAP("not ok 2 - b\n  ---\n  {\n    \"error\": \"boom\\nmore\",\n    \"stderr\": \"msg\"\n  }\n  ...\n1..1\n")
	want := []string{"not ok 2 - b", "    error: boom | more", "    stderr: msg"}
	if strings.Join(r.failures, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures = %q, want %q", r.failures, want)
	}
}

func TestReadExpected(t *testing.T) {
	got, err := parseExpected("# comment\n\ncreate\n  state  # trailing comment\ncreate\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "create,state" {
		t.Errorf("parseExpected = %q, want [create state]", got)
	}
	if _, err := parseExpected("two names\n"); err == nil {
		t.Error("a line with two names was accepted")
	}
}
