package posture

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/kustode/kustode/internal/finding"
)

// SARIF 2.1.0, the subset GitHub code scanning and other SARIF consumers
// read: one run, the checks as rules, each finding a result located at the
// file and line of its object's document.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string          `json:"id"`
		ShortDescription     sarifText       `json:"shortDescription"`
		FullDescription      sarifText       `json:"fullDescription"`
		Help                 sarifText       `json:"help"`
		DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
		Properties           sarifRuleProps  `json:"properties"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifRuleConfig struct {
		Level string `json:"level"`
	}
	sarifRuleProps struct {
		Tags             []string `json:"tags"`
		SecuritySeverity string   `json:"security-severity"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical  `json:"physicalLocation"`
		LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogical struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// sarifLevel maps a severity to a SARIF level, and sarifScore to the
// security-severity score GitHub ranks alerts by (CVSS-like bands).
func sarifLevel(s finding.Severity) string {
	switch {
	case s >= finding.High:
		return "error"
	case s == finding.Medium:
		return "warning"
	default:
		return "note"
	}
}

var sarifScore = map[finding.Severity]string{
	finding.Critical: "9.5", finding.High: "8.0", finding.Medium: "5.5", finding.Low: "3.0", finding.Info: "1.0",
}

// WriteSARIF writes the report as a SARIF 2.1.0 log. checks are the checks
// that ran (they become the rules); toolVersion is kustode's version. File
// paths are written relative and with forward slashes, as code-scanning
// services expect.
func (r Report) WriteSARIF(w io.Writer, checks []*Check, toolVersion string) error {
	driver := sarifDriver{Name: "kustode", Version: toolVersion, InformationURI: "https://github.com/kustode/kustode", Rules: []sarifRule{}}
	index := map[string]int{}
	for _, c := range checks {
		index[c.ID] = len(driver.Rules)
		tags := []string{"security", "kubernetes"}
		if c.Frameworks.PSS != "" {
			tags = append(tags, "pss-"+c.Frameworks.PSS)
		}
		for _, id := range c.Frameworks.CIS {
			tags = append(tags, "cis-"+id)
		}
		for _, id := range c.Frameworks.MITRE {
			tags = append(tags, "mitre-"+strings.ToLower(id))
		}
		driver.Rules = append(driver.Rules, sarifRule{
			// No name: the id is already readable, and SARIF wants a name
			// only where it differs from the id.
			ID:                   c.ID,
			ShortDescription:     sarifText{c.Title},
			FullDescription:      sarifText{c.Description},
			Help:                 sarifText{"Fix: " + c.Remediation},
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(c.Severity)},
			Properties:           sarifRuleProps{Tags: tags, SecuritySeverity: sarifScore[c.Severity]},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range r.Findings {
		i, ok := index[f.CheckID]
		if !ok {
			return fmt.Errorf("sarif: finding of check %s, which is not among the checks given", f.CheckID)
		}
		loc := sarifLocation{
			PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: sarifURI(f.File)}},
			LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Object.String(), Kind: "object"}},
		}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		run.Results = append(run.Results, sarifResult{
			RuleID:    f.CheckID,
			RuleIndex: i,
			Level:     sarifLevel(f.Severity),
			Message:   sarifText{fmt.Sprintf("%s: %s", f.Object, f.Message)},
			Locations: []sarifLocation{loc},
		})
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func sarifURI(file string) string {
	switch file {
	case "":
		return "cluster"
	case "<stdin>":
		return "stdin"
	}
	file = filepath.ToSlash(strings.TrimPrefix(filepath.Clean(file), "./"))
	if path.IsAbs(file) {
		// An absolute path is a file: URI (a URI reference may not
		// start with a slash where SARIF expects a relative one).
		return (&url.URL{Scheme: "file", Path: file}).String()
	}
	return (&url.URL{Path: file}).String() // escaped: spaces, '%', '#', '?'
}
