# Who may call the OPA server itself (opa run --authentication=tls --authorization=basic).
#
# Clients authenticate with a certificate of the install's own CA (the TLS handshake refuses any other); this
# policy then admits Trino to its three decision documents (POST only) and the platform's health check to
# /health. Nobody may read, push or delete policies or data through the API: they come from include/opa/ at start.
package system.authz

import rego.v1

trino_identity := "CN=tap-trino"

health_identity := "CN=tap-healthcheck"

trino_decisions := {"allow", "batch", "rowFilters"}

default allow := false

allow if {
	input.identity == trino_identity
	input.method == "POST"
	some decision in trino_decisions
	input.path == ["v1", "data", "trino", decision]
}

allow if {
	input.identity == health_identity
	input.method == "GET"
	input.path == ["health"]
}
