package system.authz_test

import rego.v1

import data.system.authz

test_trino_asks_for_its_decisions if {
	every decision in {"allow", "batch", "rowFilters"} {
		authz.allow with input as {"identity": "CN=tap-trino", "method": "POST", "path": ["v1", "data", "trino", decision]}
	}
}

test_trino_cannot_read_other_documents_or_change_policies if {
	not authz.allow with input as {"identity": "CN=tap-trino", "method": "POST", "path": ["v1", "data", "system", "authz"]}
	not authz.allow with input as {"identity": "CN=tap-trino", "method": "POST", "path": ["v1", "data"]}
	not authz.allow with input as {"identity": "CN=tap-trino", "method": "GET", "path": ["v1", "data", "trino", "allow"]}
	not authz.allow with input as {"identity": "CN=tap-trino", "method": "PUT", "path": ["v1", "policies", "trino"]}
	not authz.allow with input as {"identity": "CN=tap-trino", "method": "DELETE", "path": ["v1", "data", "trino"]}
}

test_health_check_sees_health_only if {
	authz.allow with input as {"identity": "CN=tap-healthcheck", "method": "GET", "path": ["health"]}
	not authz.allow with input as {"identity": "CN=tap-healthcheck", "method": "POST", "path": ["v1", "data", "trino", "allow"]}
}

test_anyone_else_is_refused if {
	not authz.allow with input as {"method": "GET", "path": ["health"]}
	not authz.allow with input as {"identity": "CN=intruder", "method": "POST", "path": ["v1", "data", "trino", "allow"]}
}
