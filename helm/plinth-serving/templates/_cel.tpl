{{/* CEL building blocks of the ValidatingAdmissionPolicy. Every one is a boolean, written without list or
     map literals and without ternaries, so it type-checks in the API server's environment (homogeneous
     literals, `object` as dyn) and evaluates the same in tests/k8s/test_admission_policy.py (cel-python). */}}

{{/* `field` is absent on both `new` and `old`, or present on both with equal values:
     dict "new" "object.spec" "old" "oldObject.spec" "field" "selector" */}}
{{- define "plinth.cel.same" -}}
(has({{ .new }}.{{ .field }}) == has({{ .old }}.{{ .field }}) && (!has({{ .new }}.{{ .field }}) || {{ .new }}.{{ .field }} == {{ .old }}.{{ .field }}))
{{- end }}

{{/* Two lists of objects hold `field` at the same positions with equal values (and so are of one length). */}}
{{- define "plinth.cel.sameEach" -}}
({{ .new }}.map(x, has(x.{{ .field }})) == {{ .old }}.map(x, has(x.{{ .field }})) && {{ .new }}.filter(x, has(x.{{ .field }})).map(x, x.{{ .field }}) == {{ .old }}.filter(x, has(x.{{ .field }})).map(x, x.{{ .field }}))
{{- end }}

{{/* The same for two lists of lists of objects (the backendRefs of each rule). */}}
{{- define "plinth.cel.sameEachNested" -}}
({{ .new }}.map(l, l.map(x, has(x.{{ .field }}))) == {{ .old }}.map(l, l.map(x, has(x.{{ .field }}))) && {{ .new }}.map(l, l.filter(x, has(x.{{ .field }})).map(x, x.{{ .field }})) == {{ .old }}.map(l, l.filter(x, has(x.{{ .field }})).map(x, x.{{ .field }})))
{{- end }}

{{/* The map `field` of `new` and `old` is equal but for the key `except`, which may be added or changed. */}}
{{- define "plinth.cel.sameMapExcept" -}}
{{- $n := printf "%s.%s" .new .field }}
{{- $o := printf "%s.%s" .old .field }}
{{- $k := .except | quote -}}
((!has({{ $n }}) || {{ $n }}.all(k, k == {{ $k }} || (has({{ $o }}) && k in {{ $o }} && {{ $o }}[k] == {{ $n }}[k]))) && (!has({{ $o }}) || {{ $o }}.all(k, k == {{ $k }} || (has({{ $n }}) && k in {{ $n }}))))
{{- end }}

{{/* Filter `f` is the shadow phase's mirror, as the controller writes it and the API server stores it: a
     RequestMirror of every request to the canary Service on the route's port, and nothing more (no share, no
     other backend). The Gateway API CRD schema defaults a backendRef's `group` to "" and `kind` to Service
     before admission sees the object, so those two may be absent or hold exactly their defaults.
     dict "canary" "<service>" "port" 3000 */}}
{{- define "plinth.cel.isMirror" -}}
(has(f.type) && f.type == "RequestMirror" && has(f.requestMirror) && has(f.requestMirror.backendRef) && has(f.requestMirror.backendRef.name) && f.requestMirror.backendRef.name == {{ .canary | quote }} && has(f.requestMirror.backendRef.port) && f.requestMirror.backendRef.port == {{ .port }} && (!has(f.requestMirror.backendRef.group) || f.requestMirror.backendRef.group == "") && (!has(f.requestMirror.backendRef.kind) || f.requestMirror.backendRef.kind == "Service") && !has(f.requestMirror.backendRef.namespace) && !has(f.requestMirror.percent) && !has(f.requestMirror.fraction))
{{- end }}

{{/* The rules' filters of `new` and `old` are equal once the shadow phase's mirror (isMirror) is taken out of
     both: the controller may add or remove that filter on any rule, and change no other filter. */}}
{{- define "plinth.cel.sameFiltersButMirror" -}}
{{- $m := include "plinth.cel.isMirror" . -}}
({{ .new }}.map(r, has(r.filters) && r.filters.exists(f, !{{ $m }})) == {{ .old }}.map(r, has(r.filters) && r.filters.exists(f, !{{ $m }})) && {{ .new }}.filter(r, has(r.filters) && r.filters.exists(f, !{{ $m }})).map(r, r.filters.filter(f, !{{ $m }})) == {{ .old }}.filter(r, has(r.filters) && r.filters.exists(f, !{{ $m }})).map(r, r.filters.filter(f, !{{ $m }})))
{{- end }}

{{/* Every field of `new`'s and `old`'s ObjectMeta is the same but those the API server sets on a write
     (managedFields, resourceVersion, generation, uid, creationTimestamp) and those in `except` (a list).
     Listed one by one: ObjectMeta is a typed object in the API server, so no comprehension over its keys.
     dict "new" "object.metadata" "old" "oldObject.metadata" "except" (list "annotations") */}}
{{- define "plinth.cel.sameMeta" -}}
{{- $args := . }}
{{- $fields := list "name" "generateName" "namespace" "selfLink" "deletionTimestamp" "deletionGracePeriodSeconds" "ownerReferences" "finalizers" "labels" "annotations" }}
{{- $same := list }}
{{- range $field := $fields }}
{{- if not (has $field ($args.except | default list)) }}
{{- $same = append $same (include "plinth.cel.same" (dict "new" $args.new "old" $args.old "field" $field)) }}
{{- end }}
{{- end -}}
({{ join " && " $same }})
{{- end }}

{{/* The annotation `key` of `new` is absent, or as it was on `old`: it may be removed, never set or changed. */}}
{{- define "plinth.cel.removedOrKept" -}}
{{- $k := .key | quote -}}
(!has({{ .new }}.annotations) || !({{ $k }} in {{ .new }}.annotations) || (has({{ .old }}.annotations) && {{ $k }} in {{ .old }}.annotations && {{ .old }}.annotations[{{ $k }}] == {{ .new }}.annotations[{{ $k }}]))
{{- end }}

{{/* The record's `status` (serving/rollout/core/state.py: JSON, indent 1, sorted keys, so each top-level key
     is a line of its own and no string value holds a newline) says `key` is the string `value`, a CEL string
     expression that is digits or a fixed word, so it cannot widen the match. dict "status" "..." "key" "phase" "value" "'promoting'" */}}
{{- define "plinth.cel.recordSays" -}}
{{ .status }}.contains('\n "{{ .key }}": "' + {{ .value }} + '",\n')
{{- end }}
