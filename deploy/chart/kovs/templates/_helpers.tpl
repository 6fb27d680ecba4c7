{{/*
Labels of every object the chart makes: kovs's own (the same as deploy/'s plain manifests) plus
helm's. Pod template and selector labels are kovs's only, so upgrading the chart alone does not
restart the agents.
*/}}
{{- define "kovs.labels" -}}
app.kubernetes.io/part-of: kovs
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "kovs.image" -}}
{{- $img := .Values.global.images.kovs -}}
{{- $ref := printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- with .Values.global.registry.address -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" .) $ref -}}
{{- end -}}
{{- $ref -}}
{{- end }}

{{/*
Settings kovs cannot honour fail the render naming the key, instead of being ignored.
*/}}
{{- define "kovs.validate" -}}
{{- $n := .Values.networking -}}
{{- if $n.IFACE -}}
{{- fail "networking.IFACE: kovs-agent picks its tunnel endpoint by address, not by interface; leave IFACE empty and set agent.encapIP (\"\" or \"hostIP\")" -}}
{{- end -}}
{{- if not (has $n.NETWORK_TYPE (list "geneve" "vlan")) -}}
{{- fail (printf "networking.NETWORK_TYPE %q: expected geneve or vlan" $n.NETWORK_TYPE) -}}
{{- end -}}
{{- if not (has $n.TUNNEL_TYPE (list "geneve" "vxlan" "stt")) -}}
{{- fail (printf "networking.TUNNEL_TYPE %q: expected geneve, vxlan or stt" $n.TUNNEL_TYPE) -}}
{{- end -}}
{{- if not (has $n.POD_NIC_TYPE (list "veth-pair" "internal-port")) -}}
{{- fail (printf "networking.POD_NIC_TYPE %q: expected veth-pair or internal-port" $n.POD_NIC_TYPE) -}}
{{- end -}}
{{- if not (has .Values.agent.datapath (list "system" "netdev")) -}}
{{- fail (printf "agent.datapath %q: expected system or netdev" .Values.agent.datapath) -}}
{{- end -}}
{{- if not (has .Values.agent.encapIP (list "" "hostIP")) -}}
{{- fail (printf "agent.encapIP %q: expected \"\" (the route's source address) or \"hostIP\" (the node's IP); one fixed address cannot serve every node" .Values.agent.encapIP) -}}
{{- end -}}
{{- if and (eq $n.NETWORK_TYPE "vlan") .Values.defaultNetwork.create (not $n.vlan.VLAN_INTERFACE_NAME) -}}
{{- fail "networking.vlan.VLAN_INTERFACE_NAME: required with NETWORK_TYPE=vlan (the NIC of the default provider network)" -}}
{{- end -}}
{{- if and .Values.func.LOGICAL_GATEWAY .Values.func.U2O_INTERCONNECTION -}}
{{- fail "func.LOGICAL_GATEWAY and func.U2O_INTERCONNECTION: not both (as in Kube-OVN)" -}}
{{- end -}}
{{- end }}
