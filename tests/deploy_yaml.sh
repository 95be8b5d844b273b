#!/bin/sh
# The deployment YAML: yamllint on the Dapr components and the chart's plain YAML; the chart
# rendered by tests/helmrender (Helm's template engine: Go's text/template, sprig and Helm's own
# functions, built here from Debian's Go packages) with its default values, with the optional
# parts switched on, and with values-production.yaml, each rendering linted and checked document
# by document (tests/helm_check.py: kinds, probes, resources, the hook, HPA targets, selectors
# against pod labels, Secret and ConfigMap references), and the checks shown to fail on broken
# copies of the chart; and what the rendering says checked against the repository: only config
# files that exist in config/, only environment variables those configs read, probes, rolling
# updates, resources, grace periods, the migration hook, and the Dapr app token wired from a
# Secret to both the sidecar (annotation) and taskorad (APP_API_TOKEN), and grace periods that
# outlast each pod's drain delay and shutdown timeout.
# Skips (77) when yamllint, Go or the Go packages (scripts/deps.sh GO_PACKAGES) are missing,
# unless TASKORA_REQUIRE_GO or CI is set (then 99).
# The monitoring parts: the PrometheusRule's groups equal deploy/prometheus/alerts.yaml's (and
# promtool, when installed, accepts them).
set -eu
src=${TK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
command -v yamllint >/dev/null 2>&1 || { echo "SKIP: yamllint is not installed (apt-get install yamllint)"; exit 77; }
gopath=/usr/share/gocode
if ! command -v go >/dev/null 2>&1 || [ ! -d $gopath/src/github.com/Masterminds/sprig ] ||
    [ ! -d $gopath/src/gopkg.in/yaml.v2 ]; then
    msg="Go, sprig or yaml.v2 is not installed (scripts/deps.sh installs GO_PACKAGES)"
    if [ "${TASKORA_REQUIRE_GO:-0}" = 1 ] || [ -n "${CI:-}" ]; then echo "FAIL: $msg" >&2; exit 99; fi
    echo "SKIP: $msg"; exit 77
fi
work=$(mktemp -d /tmp/taskora-deploy-yaml-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
chart="$src/deploy/helm/taskora"
lint() { yamllint -s -c "$src/deploy/.yamllint" "$@" || fail "yamllint: $*"; }
# renderings: toYaml writes sequences unindented as helm does, the templates indent theirs
lint_rendered() {
    yamllint -s -d "{extends: $src/deploy/.yamllint, rules: {indentation: {spaces: 2, indent-sequences: whatever}}}" \
        "$@" || fail "yamllint: $*"
}

# the renderer, built offline from Debian's packages (GOPATH mode), again when its source changed
bin=${TK_BUILDDIR:-$work}/tests/helm_render
mkdir -p "$(dirname "$bin")"
if [ ! -x "$bin" ] || [ -n "$(find "$src/tests/helmrender" -newer "$bin" -name '*.go')" ]; then
    (cd "$src/tests/helmrender" && env GO111MODULE=off GOPATH=$gopath GOFLAGS= GOPROXY=off \
        GOCACHE="$(dirname "$bin")/.gocache" go build -o "$bin.tmp" .) >"$work/go.log" 2>&1 ||
        { cat "$work/go.log" >&2; fail "cannot build tests/helmrender"; }
    mv "$bin.tmp" "$bin"
fi

# 1. plain YAML
lint "$src"/deploy/dapr/*.yaml "$chart/Chart.yaml" "$chart/values.yaml" "$src/deploy/prometheus/alerts.yaml"
for f in "$src"/deploy/dapr/*.yaml; do
    grep -q '^apiVersion: dapr.io/v1alpha1$' "$f" || fail "$f: not a dapr.io/v1alpha1 resource"
done
grep -q '^  type: pubsub.kafka$' "$src/deploy/dapr/pubsub-kafka.yaml" || fail "no pubsub.kafka component"
grep -q '^  type: state.postgresql$' "$src/deploy/dapr/statestore-postgresql.yaml" || fail "no state.postgresql component"
grep -q '^kind: Resiliency$' "$src/deploy/dapr/resiliency.yaml" || fail "no Resiliency"

# 2. render (helm lint too when helm is installed)
render() { # render OUT [helm template options]...
    out=$1; shift
    "$bin" taskora "$chart" "$@" >"$out" 2>"$work/render.err" ||
        { cat "$work/render.err" >&2; fail "tests/helmrender $*"; }
    ! grep -n '{{\|}}\|<no value>' "$out" || fail "unrendered template text in $out"
    lint_rendered "$out"
}
if command -v helm >/dev/null 2>&1; then helm lint "$chart" >"$work/helm-lint.out" 2>&1 ||
    { cat "$work/helm-lint.out" >&2; fail "helm lint"; }; fi
render "$work/default.yaml"
render "$work/optional.yaml" --set redpanda.enabled=true --set autoscaling.enabled=true \
    --set secrets.existingSecret=taskora-prod --set serviceAccount.create=false \
    --set dapr.enabled=true --set dapr.appTokenSecret=taskora-dapr-prod \
    --set ingress.tls.enabled=true --set ingress.frontend.serviceName=web \
    --set networkPolicy.apiEgressHttps=false --set shutdown.drainDelaySeconds=2 \
    --set shutdown.timeoutSeconds=20
render "$work/minimal.yaml" --set networkPolicy.enabled=false --set ingress.enabled=false \
    --set migrations.enabled=false
render "$work/dapr.yaml" --set dapr.enabled=true --set dapr.appToken=t0ken-from-values
render "$work/rotation.yaml" --set secrets.betterAuthSecretPrevious=the-old-secret
render "$work/monitoring.yaml" --set metrics.serviceMonitor.enabled=true \
    --set metrics.prometheusRule.enabled=true
"$bin" taskora "$chart" --notes >"$work/notes.txt" || fail "NOTES.txt does not render"

# 3. facts from a rendering, one per line:
#   doc KIND NAME | config DOC FILE | env DOC NAME | envval DOC NAME VALUE (a literal value)
#   envfrom DOC CONFIGMAP | secretref DOC SECRET KEY
#   data DOC KEY VALUE (ConfigMap data, Secret stringData) | probe DOC liveness|readiness PATH
#   res DOC requests|limits cpu|memory VALUE | field DOC KEY VALUE (replicas, maxSurge, ...)
#   hook DOC VALUE | annotation DOC dapr.io/KEY VALUE
facts() {
    awk '
    function ind(s) { match(s, /^ */); return RLENGTH }
    function val(s) { sub(/^[^:]*: */, "", s); gsub(/^"|"$/, "", s); return s }
    /^---$/ { kind = ""; doc = ""; envind = -1; sect = ""; next }
    /^#/ || /^ *$/ { next }
    /^kind: / { kind = val($0) }
    /^  name: / && doc == "" { doc = val($0); print "doc", kind, doc }
    /^(data|stringData):$/ { sect = "data"; next }
    /^[a-zA-Z]/ { sect = "" }
    sect == "data" && /^  [A-Za-z_][A-Za-z0-9_]*: / { k = $1; sub(/:$/, "", k); print "data", doc, k, val($0); next }
    /args: \[.*\/etc\/taskora\// { c = $0; sub(/.*\/etc\/taskora\//, "/etc/taskora/", c); sub(/".*/, "", c); print "config", doc, c }
    { i = ind($0) }
    envind >= 0 && i <= envind { envind = -1 }
    /^ *env:$/ { envind = i; next }
    envind >= 0 && i == envind + 2 && /^ *- name: / { ename = val($0); print "env", doc, ename; next }
    envind >= 0 && i == envind + 4 && /^ *value: / && ename != "" { print "envval", doc, ename, val($0) }
    envind >= 0 && i == envind + 2 { ename = "" }
    /secretKeyRef:$/ { sk = 1; skname = ""; next }
    sk && /^ *name: / { skname = val($0); next }
    sk && /^ *key: / { print "secretref", doc, skname, val($0); sk = 0; next }
    /configMapRef:$/ { cm = 1; next }
    cm && /^ *name: / { print "envfrom", doc, val($0); cm = 0; next }
    /^ *livenessProbe:$/ { probe = "liveness"; next }
    /^ *readinessProbe:$/ { probe = "readiness"; next }
    probe != "" && /^ *path: / { print "probe", doc, probe, val($0); probe = ""; next }
    /^ *resources:$/ { resind = i; rkind = ""; next }
    resind > 0 && i <= resind { resind = 0 }
    resind > 0 && /^ *(requests|limits):$/ { rkind = $1; sub(/:$/, "", rkind); next }
    resind > 0 && rkind != "" && /^ *(cpu|memory): / { k = $1; sub(/:$/, "", k); print "res", doc, rkind, k, val($0); next }
    /^ *(replicas|maxSurge|maxUnavailable|terminationGracePeriodSeconds|minReplicas|maxReplicas|averageUtilization): / {
        k = $1; sub(/:$/, "", k); print "field", doc, k, val($0) }
    /^ *helm.sh\/hook: / { print "hook", doc, val($0) }
    /^ *dapr\.io\/[a-z-]*: / { k = $1; sub(/:$/, "", k); print "annotation", doc, k, val($0) }
    ' "$1"
}
facts "$work/default.yaml" >"$work/default.facts"
facts "$work/optional.yaml" >"$work/optional.facts"
facts "$work/dapr.yaml" >"$work/dapr.facts"
facts "$work/rotation.yaml" >"$work/rotation.facts"
has() { grep -qx "$1" "$2" || fail "expected \"$1\" in the rendering ($2)"; }
F="$work/default.facts"
for d in "Deployment taskora-api" "Deployment taskora-worker-notifications" \
    "Deployment taskora-worker-analytics" "Service taskora-api" "Ingress taskora" \
    "Job taskora-migrate" "Secret taskora-secrets" "ConfigMap taskora-settings" \
    "ServiceAccount taskora" "NetworkPolicy taskora-api" "NetworkPolicy taskora-workers" \
    "PodDisruptionBudget taskora-api"; do
    has "doc $d" "$F"
done
! grep -q '^doc \(StatefulSet\|HorizontalPodAutoscaler\) ' "$F" || fail "optional parts rendered by default"
has "doc StatefulSet taskora-redpanda" "$work/optional.facts"
has "doc HorizontalPodAutoscaler taskora-api" "$work/optional.facts"
has "field taskora-api minReplicas 2" "$work/optional.facts"
has "field taskora-api maxReplicas 10" "$work/optional.facts"
has "field taskora-api averageUtilization 70" "$work/optional.facts"
! grep -q '^field taskora-api replicas ' "$work/optional.facts" || fail "replicas set while the HPA scales the API"
has "data taskora-settings KAFKA_BROKERS taskora-redpanda-0.taskora-redpanda.default.svc.cluster.local:9092" \
    "$work/optional.facts"
! grep -q '^doc Secret ' "$work/optional.facts" || fail "a Secret is created although existingSecret is set"
! grep -q '^secretref [^ ]* taskora-secrets ' "$work/optional.facts" || fail "existingSecret is not used everywhere"
has "field taskora-api replicas 2" "$F"
has "hook taskora-migrate pre-install,pre-upgrade" "$F"
has "config taskora-migrate /etc/taskora/api.json" "$F"
grep -q 'args: \["migrate", "-c", "/etc/taskora/api.json"\]' "$work/default.yaml" || fail "the hook Job does not migrate"
has "res taskora-api requests cpu 200m" "$F"
has "res taskora-api limits cpu 500m" "$F"
has "res taskora-api requests memory 256Mi" "$F"
has "res taskora-api limits memory 512Mi" "$F"

# /metrics is served on the admin listener only, and that is where Prometheus is pointed
admin=$(awk '$1 == "data" && $3 == "TASKORA_HTTP_ADMIN_LISTEN" { print $4 }' "$F" | tr -d '"')
[ -n "$admin" ] || fail "the ConfigMap sets no TASKORA_HTTP_ADMIN_LISTEN"
admin_port=${admin##*:}
ports=$(grep -c "prometheus.io/port: \"$admin_port\"" "$work/default.yaml")
[ "$ports" -eq 3 ] || fail "prometheus.io/port is not the admin port $admin_port on every Deployment"
grep -q "containerPort: $admin_port" "$work/default.yaml" || fail "no containerPort $admin_port"
for c in api worker-analytics worker-notifications; do
    grep -q '"admin_listen": "${TASKORA_HTTP_ADMIN_LISTEN' "$src/config/$c.json" ||
        fail "config/$c.json does not read TASKORA_HTTP_ADMIN_LISTEN"
done

# drain_of FACTS DEPLOYMENT: the drain delay (ms) that Deployment's taskorad gets on SIGTERM: its
# config's drain_delay_ms, a literal or ${TASKORA_DRAIN_DELAY_MS:-default} with the container's
# or the ConfigMap's value; the schema's 5000 when the config does not set it
drain_of() {
    cfg=$(awk -v d="$2" '$1 == "config" && $2 == d { print $3 }' "$1")
    line=$(grep '"drain_delay_ms"' "$src/config/${cfg#/etc/taskora/}" || true)
    case $line in
    '') echo 5000 ;;
    *'${TASKORA_DRAIN_DELAY_MS'*)
        v=$(awk -v d="$2" '$1 == "envval" && $2 == d && $3 == "TASKORA_DRAIN_DELAY_MS" { print $4 }' "$1")
        [ -n "$v" ] || v=$(awk '$1 == "data" && $3 == "TASKORA_DRAIN_DELAY_MS" { print $4 }' "$1")
        [ -n "$v" ] || v=$(printf '%s' "$line" | sed -n 's/.*:-\([0-9]*\)}.*/\1/p')
        echo "$v" ;;
    *) printf '%s' "$line" | sed 's/.*: *"\{0,1\}\([0-9]*\).*/\1/' ;;
    esac
}
# grace_ok FACTS: every Deployment's terminationGracePeriodSeconds outlasts its drain delay and
# shutdown timeout (past them taskorad exits by itself; the kubelet must not kill it sooner)
grace_ok() {
    shutdown_ms=$(awk '$1 == "data" && $3 == "TASKORA_SHUTDOWN_TIMEOUT_MS" { print $4 }' "$1")
    [ -n "$shutdown_ms" ] || fail "the ConfigMap sets no TASKORA_SHUTDOWN_TIMEOUT_MS ($1)"
    awk '$1 == "doc" && $2 == "Deployment" { print $3 }' "$1" | grep -v redpanda | while read -r dep; do
        grace=$(awk -v d="$dep" '$1 == "field" && $2 == d && $3 == "terminationGracePeriodSeconds" { print $4 }' "$1")
        drain=$(drain_of "$1" "$dep")
        [ -n "$drain" ] || fail "$dep: its drain delay cannot be read"
        if [ -z "$grace" ] || [ $((grace * 1000)) -le $((drain + shutdown_ms)) ]; then
            fail "$dep: terminationGracePeriodSeconds ${grace:-unset} is not longer than the drain delay $drain ms + the shutdown timeout $shutdown_ms ms ($1)"
        fi
    done
}
grace_ok "$F"
grace_ok "$work/optional.facts"
# the API drains (its delay from the values), the workers take no traffic and do not; no preStop
has "envval taskora-api TASKORA_DRAIN_DELAY_MS 5000" "$F"
has "envval taskora-api TASKORA_DRAIN_DELAY_MS 2000" "$work/optional.facts"
has "data taskora-settings TASKORA_SHUTDOWN_TIMEOUT_MS 20000" "$work/optional.facts"
has "field taskora-api terminationGracePeriodSeconds 37" "$work/optional.facts"
[ "$(drain_of "$F" taskora-api)" = 5000 ] || fail "the API does not drain for 5 s by default"
for w in taskora-worker-notifications taskora-worker-analytics; do
    [ "$(drain_of "$F" $w)" = 0 ] || fail "$w drains although it takes no traffic"
done
! grep -q 'preStop' "$work/default.yaml" "$work/optional.yaml" || fail "a preStop hook: taskorad drains by itself"
awk '$1 == "doc" && $2 == "Deployment" { print $3 }' "$F" >"$work/deployments"
while read -r dep; do
    has "field $dep maxSurge 1" "$F"
    has "field $dep maxUnavailable 0" "$F"
    has "probe $dep liveness /health" "$F"
    has "probe $dep readiness /ready" "$F"
    has "envfrom $dep taskora-settings" "$F"
    for k in "requests cpu" "requests memory" "limits cpu" "limits memory"; do
        grep -q "^res $dep $k " "$F" || fail "$dep: no resources $k"
    done
    grep -q "^config $dep /etc/taskora/" "$F" || fail "$dep runs no config of /etc/taskora"
done <"$work/deployments"
# workers ask for less than the API
for w in taskora-worker-notifications taskora-worker-analytics; do
    for k in "requests cpu" "limits cpu" "requests memory" "limits memory"; do
        api=$(awk -v k="$k" '$1 == "res" && $2 == "taskora-api" && $3 " " $4 == k { print $5 }' "$F")
        wv=$(awk -v w="$w" -v k="$k" '$1 == "res" && $2 == w && $3 " " $4 == k { print $5 }' "$F")
        to_n() { case $1 in *m) echo "${1%m}" ;; *Mi) echo "${1%Mi}" ;; *Gi) echo $((${1%Gi} * 1024)) ;; *) echo $(($1 * 1000)) ;; esac; }
        [ "$(to_n "$wv")" -le "$(to_n "$api")" ] || fail "$w asks for more $k ($wv) than the API ($api)"
    done
done

# 4. the configs and environment variables the chart uses exist
for f in "$work/default.yaml" "$work/optional.yaml" "$work/minimal.yaml" "$chart/values.yaml" "$src/deploy/Dockerfile"; do
    grep -o '/etc/taskora/[A-Za-z0-9_.-]*\.json' "$f" | sort -u | while read -r c; do
        [ -f "$src/config/${c#/etc/taskora/}" ] || fail "$f refers to $c, but there is no config/${c#/etc/taskora/}"
    done
done
reads() { grep -q "\${$1[:}]" "$2"; }   # does config file $2 read the variable $1?
for facts_file in "$work/default.facts" "$work/optional.facts" "$work/rotation.facts"; do
    # every ConfigMap key is read by some config
    awk '$1 == "data" && $2 ~ /-settings$/ { print $3 }' "$facts_file" | while read -r k; do
        found=0
        for c in "$src"/config/*.json; do reads "$k" "$c" && found=1; done
        [ $found -eq 1 ] || fail "the ConfigMap sets $k, which no config in config/ reads"
    done
    # every env a container sets is read by the config that container runs
    awk '$1 == "config" { print $2, $3 }' "$facts_file" | while read -r doc cfg; do
        cfile="$src/config/${cfg#/etc/taskora/}"
        awk -v d="$doc" '$1 == "env" && $2 == d { print $3 }' "$facts_file" | while read -r e; do
            reads "$e" "$cfile" || fail "$doc sets $e, which ${cfg#/etc/taskora/} does not read"
        done
        awk -v d="$doc" '$1 == "env" && $2 == d { print $3 }' "$facts_file" | grep -qx DATABASE_URL ||
            fail "$doc gets no DATABASE_URL"
    done
done
awk '$1 == "env" && $2 == "taskora-api" { print $3 }' "$F" | grep -qx BETTER_AUTH_SECRET || fail "the API gets no BETTER_AUTH_SECRET"
has "data taskora-settings KAFKA_BROKERS kafka:9092" "$F"
# every Secret key the pods use is in the chart's Secret
awk '$1 == "secretref" { print $4 }' "$F" | sort -u | while read -r k; do
    grep -q "^data taskora-secrets $k " "$F" || fail "pods read $k from the Secret, which does not have it"
done
for k in DATABASE_URL BETTER_AUTH_SECRET GEMINI_API_KEY COHERE_API_KEY; do
    grep -q "^data taskora-secrets $k " "$F" || fail "the Secret has no $k"
done
# the previous auth secret (a rotation): nothing of it unless set; when set, in the Secret and
# passed to the API only; with an existing Secret, read from it whenever it has the key
! grep -q 'BETTER_AUTH_SECRET_PREVIOUS' "$F" || fail "BETTER_AUTH_SECRET_PREVIOUS rendered although empty"
has "data taskora-secrets BETTER_AUTH_SECRET_PREVIOUS the-old-secret" "$work/rotation.facts"
for f in "$work/rotation.facts" "$work/optional.facts"; do
    has "env taskora-api BETTER_AUTH_SECRET_PREVIOUS" "$f"
    ! grep -q '^env taskora-worker[^ ]* BETTER_AUTH_SECRET_PREVIOUS$' "$f" ||
        fail "workers get BETTER_AUTH_SECRET_PREVIOUS ($f)"
done
has "secretref taskora-api taskora-secrets BETTER_AUTH_SECRET_PREVIOUS" "$work/rotation.facts"
has "secretref taskora-api taskora-prod BETTER_AUTH_SECRET_PREVIOUS" "$work/optional.facts"
reads BETTER_AUTH_SECRET_PREVIOUS "$src/config/api.json" || fail "api.json does not read BETTER_AUTH_SECRET_PREVIOUS"

# 5. the Dapr app token: without Dapr nothing of it; with Dapr the sidecar (dapr.io/app-token-secret)
# and taskorad (APP_API_TOKEN, which api.json reads for the core and for realtime) get the same
# Secret's "token" (Dapr's key): from dapr.appTokenSecret, else a Secret the chart makes
! grep -q '^annotation \|^env [^ ]* APP_API_TOKEN$\|^doc Secret taskora-dapr' "$F" ||
    fail "Dapr token parts rendered with dapr.enabled=false"
dapr_wired() { # FACTS SECRET
    has "annotation taskora-api dapr.io/enabled true" "$1"
    has "annotation taskora-api dapr.io/app-token-secret $2" "$1"
    has "env taskora-api APP_API_TOKEN" "$1"
    has "secretref taskora-api $2 token" "$1"
    ! grep -q '^annotation taskora-worker\|^env taskora-worker[^ ]* APP_API_TOKEN$' "$1" ||
        fail "workers get Dapr parts ($1)"
}
dapr_wired "$work/optional.facts" taskora-dapr-prod
dapr_wired "$work/dapr.facts" taskora-dapr-app-token
has "doc Secret taskora-dapr-app-token" "$work/dapr.facts"
has "data taskora-dapr-app-token token t0ken-from-values" "$work/dapr.facts"
grep -q '"app_token": "${APP_API_TOKEN[:}]' "$src/config/api.json" || fail "api.json: dapr.app_token does not read APP_API_TOKEN"
grep -q '"dapr_token": "${APP_API_TOKEN[:}]' "$src/config/api.json" || fail "api.json: realtime's dapr_token does not read APP_API_TOKEN"
"$bin" taskora "$chart" --notes --set dapr.enabled=true | grep -q 'WARNING: *dapr.appToken is empty' ||
    fail "NOTES.txt does not warn about Dapr without a token"

# 6. every rendering document by document (tests/helm_check.py), with the production values too;
# the Secrets the user makes (values.yaml documents them as such) are the only ones it may lack
render "$work/production.yaml" -n taskora -f "$chart/values-production.yaml"
lint "$chart/values-production.yaml"
check() { # check RENDERED [--external NAME]...
    f=$1; shift
    /usr/bin/python3 "$src/tests/helm_check.py" "$@" "$f" >"$work/check.out" 2>&1
}
# external: KEY's comment in values.yaml (the comment lines right above it) says it is your own Secret
external_documented() {
    awk -v k="$1" '/^ *#/ { c = c $0 "\n"; next } { if ($1 == k ":") print c; c = "" }' "$chart/values.yaml" |
        grep -qi 'own.*secret\|secret of your own' || fail "values.yaml does not document $1 as a Secret of the user's"
}
for k in existingSecret appTokenSecret secretName; do external_documented $k; done
for r in default minimal dapr; do
    check "$work/$r.yaml" || { cat "$work/check.out" >&2; fail "helm_check: $r"; }
done
check "$work/optional.yaml" --external taskora-prod --external taskora-dapr-prod --external taskora-tls ||
    { cat "$work/check.out" >&2; fail "helm_check: optional"; }
check "$work/production.yaml" --external taskora-prod --external taskora-dapr-app-token --external taskora-tls ||
    { cat "$work/check.out" >&2; fail "helm_check: production"; }
P="$work/production.facts"
facts "$work/production.yaml" >"$P"
has "doc HorizontalPodAutoscaler taskora-api" "$P"
has "field taskora-api minReplicas 3" "$P"
! grep -q '^field taskora-api replicas ' "$P" || fail "production: replicas set while the HPA scales the API"
! grep -q '^doc Secret ' "$P" || fail "production: the chart makes a Secret although they are the user's"
has "data taskora-settings KAFKA_SECURITY_PROTOCOL SASL_SSL" "$P"
has "data taskora-settings KAFKA_SASL_MECHANISM SCRAM-SHA-512" "$P"
has "secretref taskora-api taskora-prod KAFKA_SASL_PASSWORD" "$P"
dapr_wired "$P" taskora-dapr-app-token
grep -q 'sslmode=require' "$chart/values-production.yaml" || fail "values-production.yaml does not say sslmode=require"
! grep -q 'sslmode=disable' "$work/production.yaml" || fail "production: a database URL without TLS"
grace_ok "$P"
# a policy port that is not the managed services' is a connection refused in production
grep -q 'port: 25060' "$work/production.yaml" || fail "production: no egress to the managed PostgreSQL port"

# broken copies of the chart must fail the checks: SUBST FILE MESSAGE (sed on templates/FILE)
broken() {
    rm -rf "$work/broken"; cp -R "$chart" "$work/broken"
    sed -i "$1" "$work/broken/templates/$2"
    cmp -s "$chart/templates/$2" "$work/broken/templates/$2" && fail "the breakage $1 changed nothing"
    "$bin" taskora "$work/broken" >"$work/broken.yaml" || fail "the broken copy ($1) does not render"
    ! check "$work/broken.yaml" || fail "helm_check passes a chart broken by $1 in $2"
    grep -q "$3" "$work/check.out" || { cat "$work/check.out" >&2; fail "broken by $1: no \"$3\""; }
}
broken '/podSelector:/,/component:/s/component: api/component: apii/' networkpolicy.yaml \
    'NetworkPolicy taskora-api: its podSelector .* matches no pod'
broken 's/taskora.io\/role: worker/taskora.io\/role: workers/' networkpolicy.yaml \
    'Deployment taskora-worker-analytics: its pods are selected by no NetworkPolicy'
broken 's/name: {{ .Release.Name }}-settings/name: {{ .Release.Name }}-setting/' _helpers.tpl \
    'refers to ConfigMap taskora-setting, which the chart does not make'
broken 's/key: BETTER_AUTH_SECRET/key: BETTER_AUTH_SECRETS/' deployment-api.yaml \
    'refers to key BETTER_AUTH_SECRETS of Secret taskora-secrets'
broken 's/path: \/ready/path: \/readyz/' _helpers.tpl 'readinessProbe is not an HTTP GET of /ready'
broken '/^          resources:/,/nindent 12/d' deployment-worker-analytics.yaml \
    'worker-analytics: container taskorad has no resources.requests.cpu'
broken 's/pre-install,pre-upgrade/post-install/' job-migrate.yaml 'Job taskora-migrate: is not a helm.sh/hook'
broken 's/apps\/v1/apps\/v1beta1/' deployment-api.yaml 'unknown kind Deployment at apiVersion apps/v1beta1'
rm -rf "$work/broken"; cp -R "$chart" "$work/broken"
sed -i '/kind: Deployment/{n;s/-api$/-apii/}' "$work/broken/templates/hpa.yaml"
"$bin" taskora "$work/broken" --set autoscaling.enabled=true >"$work/broken.yaml" || fail "broken HPA does not render"
! check "$work/broken.yaml" || fail "helm_check passes an HPA that targets no Deployment"
grep -q 'HorizontalPodAutoscaler taskora-api: targets apps/v1 Deployment taskora-apii' "$work/check.out" ||
    { cat "$work/check.out" >&2; fail "broken HPA: wrong message"; }
# and a template error fails the rendering
printf '{{ .Values.nope.deeper }}\n' >"$work/broken/templates/oops.yaml"
! "$bin" taskora "$work/broken" >/dev/null 2>&1 || fail "a template error does not fail the rendering"

# 6. monitoring (off by default): a headless Service over every taskorad pod's metrics port, its
# ServiceMonitor, and a PrometheusRule whose groups are deploy/prometheus/alerts.yaml's
! grep -q '^kind: \(ServiceMonitor\|PrometheusRule\)$' "$work/default.yaml" ||
    fail "monitoring resources rendered by default"
facts "$work/monitoring.yaml" >"$work/monitoring.facts"
for d in "Service taskora-metrics" "ServiceMonitor taskora" "PrometheusRule taskora"; do
    has "doc $d" "$work/monitoring.facts"
done
# the Service selects the pods of the three Deployments (by their taskora.io/metrics label) and
# points at the port the containers name admin, the one /metrics is served on
[ "$(grep -c '^ *taskora.io/metrics: "true"$' "$work/monitoring.yaml")" -eq 4 ] ||
    fail "taskora.io/metrics is not on the three Deployments' pods and the metrics Service's selector"
grep -q "^ *targetPort: admin$" "$work/monitoring.yaml" || fail "the metrics Service does not target the admin port"
grep -q "^ *- port: admin$" "$work/monitoring.yaml" || fail "the ServiceMonitor does not scrape the admin port"
grep -q "^ *path: /metrics$" "$work/monitoring.yaml" || fail "the ServiceMonitor does not scrape /metrics"
awk '/^---$/ { inrule = 0; spec = 0; next } /^kind: PrometheusRule$/ { inrule = 1 }
     inrule && spec { sub(/^  /, ""); print } inrule && /^spec:$/ { spec = 1 }' \
    "$work/monitoring.yaml" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$work/rule-groups.yaml"
sed -n '/^groups:/,$p' "$src/deploy/prometheus/alerts.yaml" >"$work/alerts-groups.yaml"
diff -u "$work/alerts-groups.yaml" "$work/rule-groups.yaml" >&2 ||
    fail "the chart's PrometheusRule differs from deploy/prometheus/alerts.yaml (copy its groups)"
if command -v promtool >/dev/null 2>&1; then
    promtool check rules "$src/deploy/prometheus/alerts.yaml" >"$work/promtool.out" 2>&1 ||
        { cat "$work/promtool.out" >&2; fail "promtool check rules deploy/prometheus/alerts.yaml"; }
fi

echo "deploy YAML: plain files and 7 renderings linted and checked (9 broken charts caught); configs, env names, probes, updates, resources, Dapr token, monitoring, previous auth secret checked"
