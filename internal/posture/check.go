package posture

import (
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// Check is one posture check. Its ID never changes once released: users put
// it in exception lists and CI filters.
type Check struct {
	// ID is stable and kebab-case ("pss-privileged").
	ID string
	// Title is a short noun phrase for tables ("Privileged container").
	Title string
	// Severity is the severity of every finding the check reports.
	Severity finding.Severity
	// Description says what the check looks for and why it matters.
	Description string
	// Remediation says how to fix a finding.
	Remediation string
	// Frameworks maps the check to compliance frameworks.
	Frameworks finding.Frameworks
	// Workload makes the check run once for the pod template of every
	// workload kind (see kube.WorkloadKinds), with Pass.Pod set.
	Workload bool
	// Kinds lists other object kinds the check runs on.
	Kinds []string
	// Run inspects one object and reports findings through the Pass. It
	// must not keep references to the Pass or modify the object.
	Run func(*Pass)
}

var checkID = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Validate reports what is wrong with a check's definition.
func (c *Check) Validate() error {
	switch {
	case !checkID.MatchString(c.ID):
		return fmt.Errorf("check %q: ID must be kebab-case", c.ID)
	case c.Title == "" || c.Description == "" || c.Remediation == "":
		return fmt.Errorf("check %s: title, description and remediation are required", c.ID)
	case c.Run == nil:
		return fmt.Errorf("check %s: Run is nil", c.ID)
	case !c.Workload && len(c.Kinds) == 0:
		return fmt.Errorf("check %s: runs on nothing (set Workload or Kinds)", c.ID)
	}
	return nil
}

// Pass is what a check's Run sees of one object.
type Pass struct {
	// Object is the object being checked.
	Object *kube.Object
	// Pod is the pod template of a workload object (decoded once, shared by
	// every check); nil for other kinds.
	Pod *corev1.PodTemplateSpec
	// Index holds every object of the scan, for cross-object checks.
	Index *Index

	check    *Check
	reported *[]reported
}

// Reportf records a finding of the running check on the object. The message
// says what is wrong where ("container \"app\" runs privileged"); it must
// never contain a secret value.
func (p *Pass) Reportf(format string, args ...any) {
	*p.reported = append(*p.reported, reported{check: p.check, message: fmt.Sprintf(format, args...)})
}

// reported is a finding as a check reports it: the rest of a
// finding.Finding comes from the check and the object. A scan holds every
// finding until it has sorted them, and this is a tenth of the size.
type reported struct {
	check   *Check
	message string
}

func (r *reported) finding(o *kube.Object) finding.Finding {
	c := r.check
	return finding.Finding{
		CheckID:     c.ID,
		Severity:    c.Severity,
		Title:       c.Title,
		Message:     r.message,
		Object:      o.Ref,
		File:        o.Source.File,
		Line:        o.Source.Line,
		Remediation: c.Remediation,
		Frameworks:  c.Frameworks,
	}
}
