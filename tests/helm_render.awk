# The renderer of tests/helm_render.sh (see there for the supported subset). Input files, in
# order: Chart.yaml, values.yaml, the helper files (_*.tpl, nhelpers of them), the templates.
# mawk/POSIX awk: no gawk extensions.
function die(msg) { printf "helm_render: %s: %s\n", (cur_file != "" ? cur_file : "values"), msg > "/dev/stderr"; failed = 1; exit 1 }
function ltrim(s) { sub(/^[ \t\r\n]+/, "", s); return s }
function rtrim(s) { sub(/[ \t\r\n]+$/, "", s); return s }
function trim(s) { return rtrim(ltrim(s)) }
function indent_of(line,   m) { match(line, /^ */); return RLENGTH }

# ---- YAML subset: scalars by path, blocks kept as text ----------------------------------------
function unquote(v,   q) {
    q = substr(v, 1, 1)
    if (q == "\"" && substr(v, length(v), 1) == "\"") {
        v = substr(v, 2, length(v) - 2); gsub(/\\"/, "\"", v); gsub(/\\\\/, "\\", v); return v
    }
    if (q == "\047" && substr(v, length(v), 1) == "\047") {
        v = substr(v, 2, length(v) - 2); gsub(/\047\047/, "\047", v); return v
    }
    return v
}
function strip_comment(v) {
    if (substr(v, 1, 1) == "\"" || substr(v, 1, 1) == "\047") return v   # quoted: no comment after
    sub(/[ \t]+#.*$/, "", v)
    return v
}
# Parses the lines yl[prefix,1..n] of one YAML file into kind/val/blk under prefix.
function parse_yaml(prefix, n,   i, line, ind, key, rest, d, path, j, listind) {
    d = 0; listind = -1
    for (i = 1; i <= n; i++) {
        line = yl[prefix, i]
        if (line ~ /^[ \t]*(#.*)?$/) continue
        ind = indent_of(line)
        if (listind >= 0 && ind > listind) continue          # inside a list: kept as text only
        listind = -1
        while (d > 0 && sind[d] >= ind) d--
        if (line ~ /^ *- / || line ~ /^ *-$/) { listind = ind - 1; continue }
        if (line !~ /^ *[^ :#][^:]*:( |$)/) die("line " i ": unsupported YAML: " line)
        key = trim(substr(line, 1, index(line, ":") - 1))
        rest = trim(strip_comment(substr(line, index(line, ":") + 1)))
        path = prefix
        for (j = 1; j <= d; j++) path = path "." skey[j]
        path = path "." key
        blk_file[path] = prefix; blk_from[path] = i
        if (rest == "" || rest == "|" || rest == ">" || rest == "|-" || rest == ">-") {
            kind[path] = "block"; val[path] = ""
            if (rest != "") { kind[path] = "plain"; listind = ind; val[path] = "(multi-line)" }
            d++; sind[d] = ind; skey[d] = key
            continue
        }
        if (rest == "[]" || rest == "{}") { kind[path] = "empty"; val[path] = rest; continue }
        if (rest ~ /^["\047]/) kind[path] = "str"; else kind[path] = "plain"
        val[path] = unquote(rest)
    }
}
# The text of the block under path (its lines, outdented, comments and blank lines left out).
function block_text(path,   f, i, n, base, line, ind, out, first) {
    f = blk_file[path]; n = ylen[f]; base = indent_of(yl[f, blk_from[path]])
    out = ""; first = -1
    for (i = blk_from[path] + 1; i <= n; i++) {
        line = yl[f, i]
        if (line ~ /^[ \t]*(#.*)?$/) continue
        ind = indent_of(line)
        if (ind <= base) break   # (sequences are indented under their key: deploy/.yamllint)
        if (first < 0) first = ind
        out = out (out == "" ? "" : "\n") substr(line, first + 1)
    }
    return out
}

# ---- values as the templates see them ---------------------------------------------------------
function is_true(k, v) {
    if (k == "block") return 1
    if (k == "empty" || k == "missing") return 0
    if (k == "str") return v != ""
    return !(v == "" || v == "false" || v == "0" || v == "null" || v == "~")
}
# Evaluates one operand into R_kind/R_val/R_path.
function operand(t,   p) {
    R_path = ""
    if (t ~ /^".*"$/) { R_kind = "str"; R_val = unquote(t); return }
    if (t ~ /^-?[0-9]+$/) { R_kind = "plain"; R_val = t; return }
    if (t == "true" || t == "false") { R_kind = "plain"; R_val = t; return }
    if (t == ".") { R_kind = "root"; R_val = ""; return }
    if (t ~ /^\.Values\./) p = "V" substr(t, 8)
    else if (t ~ /^\.Chart\./) p = "C." substr(t, 8)
    else if (t ~ /^\.Release\./) p = "R." substr(t, 10)
    else die("unsupported operand \"" t "\"")
    if (p == "C.Name") p = "C.name"; else if (p == "C.Version") p = "C.version"
    else if (p == "C.AppVersion") p = "C.appVersion"
    if (!(p in kind)) die("no such value: " t)
    R_kind = kind[p]; R_val = val[p]; R_path = p
    if (R_kind == "block") R_val = ""
}
function as_string(   ) {
    if (R_kind == "block") die("a map or list printed as a string (use toYaml): " R_path)
    if (R_kind == "root") die("\".\" printed as a string")
    return R_val
}
function to_yaml(   ) {
    if (R_kind == "block") return block_text(R_path)
    if (R_kind == "empty") return R_val
    if (R_kind == "missing") return "null"
    if (R_kind == "str" && (R_val == "" || R_val ~ /^(true|false|yes|no|on|off|null|~|-?[0-9.]+)$/ || R_val ~ /[:#]/))
        return "\"" R_val "\""
    return R_val
}
function do_indent(s, n,   pad) {
    pad = sprintf("%" n "s", "")
    gsub(/\n/, "\n" pad, s)
    return pad s
}
function quote_str(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }

# Splits an action into tokens (quoted strings kept whole, | a token of its own) into tok[1..ntok].
function tokenize(a,   c, i, n, cur, inq) {
    ntok = 0; cur = ""; inq = 0; n = length(a)
    for (i = 1; i <= n; i++) {
        c = substr(a, i, 1)
        if (inq) { cur = cur c; if (c == "\\") { i++; cur = cur substr(a, i, 1) } else if (c == "\"") inq = 0; continue }
        if (c == "\"") { inq = 1; cur = cur c; continue }
        if (c == " " || c == "\t" || c == "\n") { if (cur != "") tok[++ntok] = cur; cur = ""; continue }
        if (c == "|") { if (cur != "") tok[++ntok] = cur; cur = ""; tok[++ntok] = "|"; continue }
        if (c == "(" || c == ")") die("parentheses are outside the supported subset: " a)
        cur = cur c
    }
    if (inq) die("unterminated string in: " a)
    if (cur != "") tok[++ntok] = cur
}
# Applies function f to the arguments args[pd, 1..na] (the piped value, if any, is the last one);
# leaves the result in R_kind/R_val.
function call(f, na,   s) {
    if (f == "quote") { operand_from_arg(na); R_val = quote_str(as_string()); R_kind = "str"; return }
    if (f == "toYaml") { operand_from_arg(na); R_val = to_yaml(); R_kind = "str"; return }
    if (f == "nindent" || f == "indent") {
        if (na != 2 || args[pd, 1] !~ /^[0-9]+$/) die(f " needs a count and a value")
        operand_from_arg(2); s = as_string()
        R_val = (f == "nindent" ? "\n" : "") do_indent(s, args[pd, 1] + 0); R_kind = "str"; return
    }
    if (f == "default") {
        if (na != 2) die("default needs a default and a value")
        operand_from_arg(2)
        if (is_true(R_kind, R_val)) return
        operand_from_arg(1); return
    }
    if (f == "include") {
        if (na != 2 || args[pd, 2] != ".") die("include takes a template name and \".\"")
        operand_from_arg(1)
        if (!(R_val in defs)) die("no template named " R_val)
        R_val = render(defs[R_val]); R_kind = "str"; return
    }
    if (f == "not" || f == "and" || f == "or") { R_val = cond_args(f, na) ? "true" : "false"; R_kind = "plain"; return }
    if (f == "add" || f == "mul") { R_val = arith(f, na); R_kind = "plain"; R_path = ""; return }
    die("function " f " is outside the supported subset")
}
# args[pd, i] holds literal tokens, or "\001" for the value piped in (pd: the pipeline depth, as
# include renders templates whose pipelines run inside the caller's).
function operand_from_arg(i) {
    if (args[pd, i] == "\001") { R_kind = piped_kind[pd]; R_val = piped_val[pd]; R_path = piped_path[pd]; return }
    operand(args[pd, i])
}
# add / mul of integers (Sprig's, on whole numbers): the sum or product of the arguments.
function arith(f, na,   i, acc) {
    if (na < 2) die(f " takes two or more numbers")
    acc = (f == "add") ? 0 : 1
    for (i = 1; i <= na; i++) {
        operand_from_arg(i)
        if (R_kind == "block" || R_val !~ /^-?[0-9]+$/) die(f ": not a whole number: " (R_path != "" ? R_path : R_val))
        acc = (f == "add") ? acc + R_val : acc * R_val
    }
    return sprintf("%d", acc)
}
function cond_args(f, na,   i, t) {
    if (f == "not") { if (na != 1) die("not takes one value"); operand_from_arg(1); return !is_true(R_kind, R_val) }
    for (i = 1; i <= na; i++) {
        operand_from_arg(i); t = is_true(R_kind, R_val)
        if (f == "and" && !t) return 0
        if (f == "or" && t) return 1
    }
    return f == "and"
}
# Evaluates a pipeline into R_kind/R_val.
function pipeline(a,   i, j, start, f, na, piped, n) {
    tokenize(a)
    if (ntok == 0) die("empty action")
    pd++
    for (i = 1; i <= ntok; i++) ptok[pd, i] = tok[i]
    n = ntok; piped = 0; start = 1
    for (i = 1; i <= n + 1; i++) {
        if (i <= n && ptok[pd, i] != "|") continue
        if (i == start) die("empty command in: " a)
        f = ptok[pd, start]; na = 0
        for (j = start + 1; j < i; j++) args[pd, ++na] = ptok[pd, j]
        if (piped) args[pd, ++na] = "\001"
        if (f ~ /^[a-zA-Z]+$/ && f != "true" && f != "false") call(f, na)
        else {
            if (piped || na > 0) die("\"" f "\" is not a function: " a)
            operand(f)
        }
        piped_kind[pd] = R_kind; piped_val[pd] = R_val; piped_path[pd] = R_path; piped = 1
        start = i + 1
    }
    pd--
}
function condition(a) {
    pipeline(a)
    return is_true(R_kind, R_val)
}

# ---- templates ----------------------------------------------------------------------------------
# The position after the {{ end }} matching a block opened just before pos, and that end action's
# trim flags in M_lt/M_rt and its start in M_at.
function match_end(s, pos,   depth, rest, i, j, act) {
    depth = 1
    while (1) {
        rest = substr(s, pos); i = index(rest, "{{")
        if (i == 0) die("{{ end }} missing")
        j = index(substr(rest, i + 2), "}}")
        if (j == 0) die("}} missing")
        act = substr(rest, i + 2, j - 1)
        M_at = pos + i - 1
        M_lt = act ~ /^-[ \t\n]/; M_rt = act ~ /[ \t\n]-$/
        if (M_lt) act = substr(act, 2)
        if (M_rt) act = substr(act, 1, length(act) - 1)
        act = trim(act)
        if (act ~ /^(if|range|with|define|block)[ \t]/) depth++
        else if (act == "end") { depth--; if (depth == 0) return pos + i + 1 + j + 1 }
        pos = pos + i + 1 + j + 1
    }
}
function render(s,   out, pos, i, j, rest, text, act, lt, rt, trimnext, base, name, body, e, v) {
    out = ""; pos = 1; trimnext = 0; base = sp
    while (1) {
        rest = substr(s, pos); i = index(rest, "{{")
        text = (i == 0 ? rest : substr(rest, 1, i - 1))
        if (i == 0) { if (trimnext) text = ltrim(text); if (active()) out = out text; break }
        j = index(substr(rest, i + 2), "}}")
        if (j == 0) die("}} missing")
        act = substr(rest, i + 2, j - 1)
        lt = act ~ /^-[ \t\n]/; rt = act ~ /[ \t\n]-$/
        if (lt) act = substr(act, 2)
        if (rt) act = substr(act, 1, length(act) - 1)
        act = trim(act)
        if (trimnext) text = ltrim(text)
        if (lt) text = rtrim(text)
        if (active()) out = out text
        trimnext = rt
        pos = pos + i + 1 + j + 1
        if (act ~ /^\/\*/) { if (act !~ /\*\/$/) die("unterminated comment"); continue }
        if (act ~ /^define[ \t]/) {
            name = trim(substr(act, 8)); if (name !~ /^".*"$/) die("define needs a quoted name")
            e = match_end(s, pos)
            body = substr(s, pos, M_at - pos)
            if (rt) body = ltrim(body)
            if (M_lt) body = rtrim(body)
            defs[unquote(name)] = body
            pos = e; trimnext = M_rt
            continue
        }
        if (act ~ /^if[ \t]/) {
            v = active(); sp++; st_parent[sp] = v; st_taken[sp] = 0; st_on[sp] = 0
            if (st_parent[sp]) { st_on[sp] = condition(substr(act, 4)); st_taken[sp] = st_on[sp] }
            continue
        }
        if (act ~ /^else[ \t]+if[ \t]/) {
            if (sp <= base) die("else if without if")
            if (st_parent[sp] && !st_taken[sp]) { st_on[sp] = condition(substr(act, index(act, "if") + 3)); st_taken[sp] = st_on[sp] }
            else st_on[sp] = 0
            continue
        }
        if (act == "else") {
            if (sp <= base) die("else without if")
            st_on[sp] = st_parent[sp] && !st_taken[sp]; st_taken[sp] = 1
            continue
        }
        if (act == "end") { if (sp <= base) die("end without a block"); sp--; continue }
        if (act ~ /^(range|with|block|template|tpl)[ \t]/ || act ~ /^\$/) die("outside the supported subset: {{ " act " }}")
        if (!active()) continue
        pipeline(act)
        v = R_val
        if (R_kind == "block" || R_kind == "root") v = as_string()
        out = out v
    }
    if (sp != base) die("a block is not closed with {{ end }}")
    return out
}
function active() { return sp == 0 || st_on[sp] }

# ---- input: every file is kept, the work happens at the end -------------------------------------
FNR == 1 { nfile++; fname[nfile] = FILENAME; ftext[nfile] = "" }
nfile == 1 { yl["C", FNR] = $0; ylen["C"] = FNR; next }
nfile == 2 { yl["V", FNR] = $0; ylen["V"] = FNR; next }
{ ftext[nfile] = ftext[nfile] $0 "\n" }

function load_values(   n, i, kv, k, v, p) {
    cur_file = fname[1]; parse_yaml("C", ylen["C"])
    cur_file = fname[2]; parse_yaml("V", ylen["V"])
    kind["R.Name"] = "plain"; val["R.Name"] = release
    kind["R.Namespace"] = "plain"; val["R.Namespace"] = namespace
    kind["R.Service"] = "plain"; val["R.Service"] = "Helm"
    n = split(sets, kv, "\n")
    for (i = 1; i <= n; i++) {
        if (kv[i] == "") continue
        k = substr(kv[i], 1, index(kv[i], "=") - 1); v = substr(kv[i], index(kv[i], "=") + 1)
        p = "V." k
        if (!(p in kind)) die("--set " k ": no such value in values.yaml")
        if (kind[p] == "block") die("--set " k ": only scalars can be set")
        kind[p] = (v ~ /^(true|false|-?[0-9]+)$/ || v == "") ? "plain" : "str"; val[p] = v
    }
}
END {
    if (failed) exit 1
    if (nfile < 2) { print "helm_render: no Chart.yaml / values.yaml" > "/dev/stderr"; exit 2 }
    load_values()
    sp = 0
    for (f = 3; f <= 2 + nhelpers; f++) { cur_file = fname[f]; render(ftext[f]) }
    for (f = 3 + nhelpers; f <= nfile; f++) {
        cur_file = fname[f]
        out = render(ftext[f])
        if (notes) { printf "%s", out; continue }
        if (trim(out) == "") continue
        src = fname[f]; sub(/^.*\/templates\//, "", src)
        printf "---\n# Source: %s/templates/%s\n%s", chartname, src, ltrim_nl(out)
        if (substr(out, length(out), 1) != "\n") printf "\n"
    }
}
function ltrim_nl(s) { sub(/^\n+/, "", s); return s }
