package main

// What `helm template` prints: the rendered files split into documents, each parsed as YAML,
// the plain ones in Helm's install order by kind, then the hooks.

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v2"
)

var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source, content, kind string
	hook                  bool
}

type head struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

// sortByKind is Helm's lessByKind, stable: known kinds in install order, unknown ones after
// them by kind name.
func sortByKind(ms []manifest) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := kindRank(ms[i].kind), kindRank(ms[j].kind)
		if a == len(installOrder) && b == len(installOrder) {
			return ms[i].kind < ms[j].kind
		}
		return a < b
	})
}

func splitManifests(source, rendered string) ([]manifest, error) {
	var out []manifest
	for _, d := range docSeparator.Split(rendered, -1) {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		var h head
		if err := yaml.Unmarshal([]byte(d), &h); err != nil {
			return nil, fmt.Errorf("YAML parse error on %s: %v", source, err)
		}
		_, hook := h.Metadata.Annotations["helm.sh/hook"]
		out = append(out, manifest{source: source, content: d, kind: h.Kind, hook: hook})
	}
	return out, nil
}

func run(o options) error {
	md, defaults, files, err := loadChart(o.chart)
	if err != nil {
		return err
	}
	user, err := userValues(o)
	if err != nil {
		return err
	}
	top := map[string]interface{}{
		"Values": coalesce(user, defaults),
		"Release": map[string]interface{}{
			"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": !o.upgrade, "IsUpgrade": o.upgrade, "Revision": 1,
		},
		"Chart":        md,
		"Capabilities": capabilities(o),
		"Files":        files,
	}
	e := &engine{strict: o.strict}
	names, err := e.loadTemplates(o.chart, md.Name)
	if err != nil {
		return err
	}
	var plain, hooks []manifest
	for _, n := range names {
		isNotes := strings.HasSuffix(n, "/templates/NOTES.txt")
		if strings.HasPrefix(path.Base(n), "_") || isNotes != o.notes {
			continue
		}
		out, err := e.render(n, top)
		if err != nil {
			return err
		}
		if o.notes {
			fmt.Print(out)
			return nil
		}
		ms, err := splitManifests(n, out)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.hook {
				hooks = append(hooks, m)
			} else {
				plain = append(plain, m)
			}
		}
	}
	sortByKind(plain)
	sortByKind(hooks)
	var b strings.Builder
	for _, m := range append(plain, hooks...) {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	_, err = os.Stdout.WriteString(b.String())
	return err
}
