#!/bin/sh
# A Helm template renderer for machines without helm, for the subset of the template language
# the Taskora chart keeps to (POSIX sh + awk, nothing else; the work is in helm_render.awk):
#   {{ .Values.a.b }}  {{ .Release.Name|Namespace|Service }}  {{ .Chart.Name|Version|AppVersion }}
#   {{ if COND }} / {{ else if COND }} / {{ else }} / {{ end }}, COND = X | not X | and X Y.. | or X Y..
#   {{ define "name" }} ... {{ end }} (in _*.tpl) and {{ include "name" . }}
#   toYaml X, quote, default D X, indent N, nindent N, add X Y.., mul X Y.. (whole numbers) (as
#   functions or after |), {{/* comments */}}
#   and the whitespace trimming of {{- and -}}.
# Values come from values.yaml (block style, two-space indents, indented sequences) and --set
# overrides of scalars. Anything outside the subset, and any .Values path that does not exist, is
# an error (exit 1), so a chart change that needs real helm is noticed.
#
#   tests/helm_render.sh [--release NAME] [--namespace NS] [--set a.b=value]... [--notes] CHART_DIR
# prints what `helm template` prints: "---" and "# Source: CHART/templates/FILE" before every
# template that renders to something (--notes: NOTES.txt instead).
set -eu
release=taskora
namespace=default
sets=
notes=0
while [ $# -gt 1 ]; do
    case $1 in
    --release) release=$2; shift 2 ;;
    --namespace) namespace=$2; shift 2 ;;
    --set) sets="$sets$2
"; shift 2 ;;
    --notes) notes=1; shift ;;
    *) echo "helm_render: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: helm_render.sh [--release N] [--namespace NS] [--set k=v]... [--notes] CHART_DIR" >&2; exit 2; }
chart=$1
if [ ! -f "$chart/Chart.yaml" ] || [ ! -f "$chart/values.yaml" ]; then
    echo "helm_render: $chart is not a chart" >&2; exit 2
fi

helpers=$(find "$chart/templates" -maxdepth 1 -name '_*.tpl' | sort)
templates=$(find "$chart/templates" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) ! -name '_*' | sort)
[ "$notes" -eq 1 ] && templates="$chart/templates/NOTES.txt"
nhelpers=0
for _ in $helpers; do nhelpers=$((nhelpers + 1)); done
name=$(sed -n 's/^name: *//p' "$chart/Chart.yaml")

# shellcheck disable=SC2086 # newline-separated paths without spaces
exec awk -v release="$release" -v namespace="$namespace" -v sets="$sets" -v notes="$notes" \
    -v nhelpers="$nhelpers" -v chartname="$name" -f "$(dirname "$0")/helm_render.awk" \
    "$chart/Chart.yaml" "$chart/values.yaml" $helpers $templates
