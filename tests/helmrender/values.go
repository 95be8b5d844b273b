package main

// Values as Helm reads them: YAML turned into JSON types (numbers are float64, as with
// sigs.k8s.io/yaml), -f files deep-merged in order, --set on top, then the chart's values.yaml
// under all of it (a null from the user removes a default).

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v2"
)

// jsonable turns what yaml.v2 decodes (map[interface{}]interface{}) into JSON types.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []interface{}:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// yamlToJSONTypes decodes one YAML document the way sigs.k8s.io/yaml.Unmarshal does.
func yamlToJSONTypes(data []byte, out interface{}) error {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return err
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return err
	}
	return json.Unmarshal(j, out)
}

func readValuesFile(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vals := map[string]interface{}{}
	if err := yamlToJSONTypes(data, &vals); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// mergeMaps is Helm's merge of -f files: b over a, maps merged key by key.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if om, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(om, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce puts the chart's defaults under the user's values; a user null deletes the key.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	for k, dv := range defaults {
		uv, ok := user[k]
		if !ok {
			user[k] = dv
			continue
		}
		if uv == nil {
			delete(user, k)
			continue
		}
		um, uok := uv.(map[string]interface{})
		dm, dok := dv.(map[string]interface{})
		if uok && dok {
			user[k] = coalesce(um, dm)
		} else if uok != dok && dv != nil {
			fmt.Fprintf(os.Stderr, "coalesce.go: warning: cannot overwrite table with non table for %s\n", k)
		}
	}
	return user
}

// splitUnescaped splits s at sep, not at a backslash-escaped sep nor inside {...}.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '{':
			depth++
			cur.WriteByte(c)
		case c == '}':
			depth--
			cur.WriteByte(c)
		case c == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

func unescape(s string) string {
	return strings.NewReplacer(`\,`, ",", `\.`, ".", `\=`, "=", `\\`, `\`).Replace(s)
}

// typedValue is strvals' typing of a --set value: bools, null, int64, else a string.
func typedValue(v string, asString bool) interface{} {
	if asString {
		return v
	}
	if strings.EqualFold(v, "true") {
		return true
	}
	if strings.EqualFold(v, "false") {
		return false
	}
	if strings.EqualFold(v, "null") {
		return nil
	}
	if v == "0" {
		return int64(0)
	}
	if len(v) != 0 && v[0] != '0' {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

func setValue(vals map[string]interface{}, assignment string, asString bool) error {
	eq := -1
	for i := 0; i < len(assignment); i++ {
		if assignment[i] == '\\' {
			i++
		} else if assignment[i] == '=' {
			eq = i
			break
		}
	}
	if eq <= 0 {
		return fmt.Errorf("key %q has no value", assignment)
	}
	key, raw := assignment[:eq], assignment[eq+1:]
	var val interface{}
	if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
		list := []interface{}{}
		for _, e := range splitUnescaped(raw[1:len(raw)-1], ',') {
			list = append(list, typedValue(unescape(e), asString))
		}
		val = list
	} else {
		val = typedValue(unescape(raw), asString)
	}
	return setPath(vals, splitUnescaped(key, '.'), val)
}

// setPath sets a.b[1].c: maps are made as needed, lists grow with nulls.
func setPath(m map[string]interface{}, path []string, val interface{}) error {
	name := unescape(path[0])
	idx := -1
	if open := strings.IndexByte(name, '['); open > 0 && strings.HasSuffix(name, "]") {
		n, err := strconv.Atoi(name[open+1 : len(name)-1])
		if err != nil || n < 0 {
			return fmt.Errorf("bad list index in %q", name)
		}
		name, idx = name[:open], n
	}
	if idx < 0 {
		if len(path) == 1 {
			m[name] = val
			return nil
		}
		sub, ok := m[name].(map[string]interface{})
		if !ok {
			sub = map[string]interface{}{}
			m[name] = sub
		}
		return setPath(sub, path[1:], val)
	}
	list, _ := m[name].([]interface{})
	for len(list) <= idx {
		list = append(list, nil)
	}
	m[name] = list
	if len(path) == 1 {
		list[idx] = val
		return nil
	}
	sub, ok := list[idx].(map[string]interface{})
	if !ok {
		sub = map[string]interface{}{}
		list[idx] = sub
	}
	return setPath(sub, path[1:], val)
}
