package main

// The template engine as Helm's (pkg/engine): every file of templates/ parsed into one set,
// sprig's text functions less env/expandenv plus Helm's own, missingkey=zero with "<no value>"
// removed from the output, every file not named _* executed with .Template set to it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

const recursionMax = 1000

// toYAML as Helm's: through JSON (sigs.k8s.io/yaml), keys sorted, no trailing newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return ""
	}
	data, err := yaml.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yamlToJSONTypes([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yamlToJSONTypes([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func required(warn string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(warn)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warn)
	}
	return val, nil
}

type engine struct {
	set    *template.Template
	strict bool
}

// funcMap: sprig's, Helm's, and include/tpl bound to the template set t.
func (e *engine) funcMap(t *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["required"] = required
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	included := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > recursionMax {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, vals interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		c.Funcs(e.funcMap(c))
		c, err = c.New(t.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := c.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

// loadTemplates parses every file under dir/templates, named CHART/templates/..., deepest first.
func (e *engine) loadTemplates(dir, chartName string) ([]string, error) {
	var names []string
	contents := map[string]string{}
	root := filepath.Join(dir, "templates")
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Join(chartName, filepath.ToSlash(rel))
		names = append(names, name)
		contents[name] = string(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	e.set = template.New("gotpl")
	if e.strict {
		e.set.Option("missingkey=error")
	} else {
		e.set.Option("missingkey=zero")
	}
	e.set.Funcs(e.funcMap(e.set))
	for _, n := range names {
		if _, err := e.set.New(n).Parse(contents[n]); err != nil {
			return nil, fmt.Errorf("parse error in %q: %v", n, err)
		}
	}
	return names, nil
}

// render executes the template name with the top-level values, .Template set to it.
func (e *engine) render(name string, top map[string]interface{}) (string, error) {
	vals := make(map[string]interface{}, len(top)+1)
	for k, v := range top {
		vals[k] = v
	}
	base := name[:strings.Index(name, "/templates/")+len("/templates")]
	vals["Template"] = map[string]interface{}{"Name": name, "BasePath": base}
	var buf strings.Builder
	if err := e.set.ExecuteTemplate(&buf, name, vals); err != nil {
		return "", err
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}
