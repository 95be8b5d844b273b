// helmrender renders a Helm chart as `helm template` does, for machines without helm: Go's
// text/template with sprig and Helm's own functions (include, tpl, required, toYaml, fromYaml,
// toJson, ...), .Values (values.yaml, -f files deep-merged, --set/--set-string), .Release,
// .Chart (Chart.yaml), .Capabilities, .Template and .Files.
//
//	helmrender [NAME] CHART_DIR [-f VALUES.yaml]... [--set a.b=c]... [--set-string a=b]...
//	    [-n|--namespace NS] [--is-upgrade] [--kube-version vX.Y.Z] [-a|--api-versions G/V]...
//	    [--strict] [--notes]
//
// Prints every rendered document as helm does, "---" and "# Source: CHART/templates/FILE"
// before it, documents without a helm.sh/hook annotation first (in Helm's kind order), then
// the hooks; empty documents are left out. --notes prints the rendered NOTES.txt instead.
// A template error, or a document that is not YAML, is an error (exit 1).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v2"
)

// Metadata is Helm's chart.Metadata: .Chart in the templates.
type Metadata struct {
	Name         string                   `yaml:"name"`
	Home         string                   `yaml:"home"`
	Sources      []string                 `yaml:"sources"`
	Version      string                   `yaml:"version"`
	Description  string                   `yaml:"description"`
	Keywords     []string                 `yaml:"keywords"`
	Maintainers  []map[string]string      `yaml:"maintainers"`
	Icon         string                   `yaml:"icon"`
	APIVersion   string                   `yaml:"apiVersion"`
	Condition    string                   `yaml:"condition"`
	Tags         string                   `yaml:"tags"`
	AppVersion   string                   `yaml:"appVersion"`
	Deprecated   bool                     `yaml:"deprecated"`
	Annotations  map[string]string        `yaml:"annotations"`
	KubeVersion  string                   `yaml:"kubeVersion"`
	Dependencies []map[string]interface{} `yaml:"dependencies"`
	Type         string                   `yaml:"type"`
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct{ Version, Major, Minor string }

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// Files is .Files: the chart's files outside templates/.
type Files map[string][]byte

func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) GetBytes(name string) []byte { return f[name] }

// kinds with their group/version as in a cluster of the default Kubernetes version
var defaultAPIs = map[string][]string{
	"v1": {"ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "Namespace",
		"PersistentVolumeClaim", "PersistentVolume", "Endpoints", "LimitRange", "ResourceQuota"},
	"apps/v1":                      {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"},
	"batch/v1":                     {"Job", "CronJob"},
	"autoscaling/v1":               {"HorizontalPodAutoscaler"},
	"autoscaling/v2":               {"HorizontalPodAutoscaler"},
	"policy/v1":                    {"PodDisruptionBudget"},
	"networking.k8s.io/v1":         {"Ingress", "IngressClass", "NetworkPolicy"},
	"rbac.authorization.k8s.io/v1": {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"},
	"storage.k8s.io/v1":            {"StorageClass"},
	"apiextensions.k8s.io/v1":      {"CustomResourceDefinition"},
	"coordination.k8s.io/v1":       {"Lease"},
	"scheduling.k8s.io/v1":         {"PriorityClass"},
}

// Helm's InstallOrder
var installOrder = strings.Fields(`Namespace NetworkPolicy ResourceQuota LimitRange
PodSecurityPolicy PodDisruptionBudget ServiceAccount Secret SecretList ConfigMap StorageClass
PersistentVolume PersistentVolumeClaim CustomResourceDefinition ClusterRole ClusterRoleList
ClusterRoleBinding ClusterRoleBindingList Role RoleList RoleBinding RoleBindingList Service
DaemonSet Pod ReplicationController ReplicaSet Deployment HorizontalPodAutoscaler StatefulSet Job
CronJob IngressClass Ingress APIService`)

type options struct {
	release, namespace, chart, kubeVersion string
	valueFiles, sets, setStrings, apis     []string
	upgrade, strict, notes                 bool
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "helmrender: %s\nusage: helmrender [NAME] CHART_DIR [-f FILE]... "+
		"[--set K=V]... [--set-string K=V]... [-n NS] [--is-upgrade] [--kube-version V] "+
		"[-a G/V]... [--strict] [--notes]\n", msg)
	os.Exit(2)
}

func parseArgs(args []string) options {
	o := options{release: "release-name", namespace: "default", kubeVersion: "v1.27.0"}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() string {
			if eq := strings.IndexByte(a, '='); strings.HasPrefix(a, "--") && eq > 0 {
				return a[eq+1:]
			}
			if i+1 >= len(args) {
				usage(a + " needs a value")
			}
			i++
			return args[i]
		}
		flag := a
		if eq := strings.IndexByte(a, '='); strings.HasPrefix(a, "--") && eq > 0 {
			flag = a[:eq]
		}
		switch flag {
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, val())
		case "--set":
			o.sets = append(o.sets, val())
		case "--set-string":
			o.setStrings = append(o.setStrings, val())
		case "-n", "--namespace":
			o.namespace = val()
		case "--kube-version":
			o.kubeVersion = val()
		case "-a", "--api-versions":
			o.apis = append(o.apis, val())
		case "--is-upgrade":
			o.upgrade = true
		case "--strict":
			o.strict = true
		case "--notes":
			o.notes = true
		default:
			if strings.HasPrefix(a, "-") {
				usage("unknown option " + a)
			}
			pos = append(pos, a)
		}
	}
	switch len(pos) {
	case 1:
		o.chart = pos[0]
	case 2:
		o.release, o.chart = pos[0], pos[1]
	default:
		usage("give [NAME] CHART_DIR")
	}
	return o
}

func loadChart(dir string) (*Metadata, map[string]interface{}, Files, error) {
	data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, nil, nil, err
	}
	var md Metadata
	if err := yaml.UnmarshalStrict(data, &md); err != nil {
		return nil, nil, nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if md.APIVersion != "v2" || md.Name == "" || md.Version == "" {
		return nil, nil, nil, fmt.Errorf("Chart.yaml: apiVersion v2, name and version are required")
	}
	defaults := map[string]interface{}{}
	if _, err := os.Stat(filepath.Join(dir, "values.yaml")); err == nil {
		if defaults, err = readValuesFile(filepath.Join(dir, "values.yaml")); err != nil {
			return nil, nil, nil, err
		}
	}
	files := Files{}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if info.IsDir() {
			if rel == "templates" || rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel != "Chart.yaml" && rel != "values.yaml" {
			files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		}
		return err
	})
	return &md, defaults, files, err
}

func userValues(o options) (map[string]interface{}, error) {
	vals := map[string]interface{}{}
	for _, f := range o.valueFiles {
		v, err := readValuesFile(f)
		if err != nil {
			return nil, err
		}
		vals = mergeMaps(vals, v)
	}
	for _, list := range []struct {
		sets     []string
		asString bool
	}{{o.sets, false}, {o.setStrings, true}} {
		for _, s := range list.sets {
			for _, a := range splitUnescaped(s, ',') {
				if err := setValue(vals, a, list.asString); err != nil {
					return nil, fmt.Errorf("failed parsing --set data: %v", err)
				}
			}
		}
	}
	return vals, nil
}

func capabilities(o options) Capabilities {
	v := strings.TrimPrefix(o.kubeVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		usage("--kube-version wants vMAJOR.MINOR[.PATCH]")
	}
	apis := VersionSet{}
	for gv, kinds := range defaultAPIs {
		apis = append(apis, gv)
		for _, k := range kinds {
			apis = append(apis, gv+"/"+k)
		}
	}
	apis = append(apis, o.apis...)
	sort.Strings(apis)
	return Capabilities{
		KubeVersion: KubeVersion{Version: "v" + v, Major: parts[0], Minor: parts[1]},
		APIVersions: apis,
		HelmVersion: map[string]string{"Version": "v3.12.0"},
	}
}

func main() {
	o := parseArgs(os.Args[1:])
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
