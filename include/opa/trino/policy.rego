# Trino's authorizer (access-control.name=opa): what each platform user may do, the row filters it reads through.
#
# The same users and rules as the file fallback (include/trino/access-control.json): the admin does everything;
# readers get the served anomaly tables of iceberg.taxi, read-only, and may change no data through a side door
# (no procedure, no table procedure such as `ALTER TABLE ... EXECUTE expire_snapshots`, no catalog session
# property, only the system session properties that bound their own query). Every decision not granted here is a
# denial. Decisions: data.trino.allow (one action), data.trino.batch (indices of the allowed filterResources, or of
# the columns for FilterColumns), data.trino.rowFilters (the filters Trino adds to a reader's scans).
package trino

import rego.v1

admins := {"platform_admin"}

# Reader -> row filter on the served tables (an SQL predicate over their columns); "" reads every row.
readers := {
	"analyst": "",
	"green_analyst": "trip_type = 'green'",
}

served_catalog := "iceberg"

served_schema := "taxi"

# window_features is read through window_features_current (never another run's features beside the scores, see
# plugins/taxi_anomaly/serving/views.py); model_evaluations feeds the dashboard's model-versions chart.
served_tables := {"anomaly_scores", "window_features_current", "stream_alerts", "model_evaluations"}

# System tables readers need for JDBC/ODBC metadata calls (Superset, BI tools); the query list is not among them.
reader_system_schemas := {"jdbc", "metadata"}

# System session properties that only bound the reader's own query; every other one (and every catalog session
# property, e.g. iceberg.expire_snapshots_min_retention) is refused to readers.
reader_session_properties := {"query_max_execution_time", "query_max_run_time", "query_max_planning_time"}

user := input.context.identity.user

is_admin if user in admins

is_reader if user in object.keys(readers)

default allow := false

allow if {
	is_admin
	input.action.operation != "ImpersonateUser"
}

allow if {
	is_reader
	reader_allows(input.action.operation, object.get(input.action, "resource", {}))
}

# What a reader may do ---------------------------------------------------------------------------------------------
reader_allows("ExecuteQuery", _)

reader_allows(operation, resource) if {
	operation in {"AccessCatalog", "FilterCatalogs"}
	resource.catalog.name in {served_catalog, "system"}
}

reader_allows("ShowSchemas", resource) if resource.catalog.name in {served_catalog, "system"}

# information_schema can be queried (it lists only what the filters let through) but is not listed, as with the
# file rules.
reader_allows("FilterSchemas", resource) if {
	schema_readable(resource.schema.catalogName, resource.schema.schemaName)
	resource.schema.schemaName != "information_schema"
}

reader_allows("ShowTables", resource) if schema_readable(resource.schema.catalogName, resource.schema.schemaName)

reader_allows(operation, resource) if {
	operation in {"FilterTables", "ShowColumns", "FilterColumns", "SelectFromColumns"}
	table_readable(resource.table)
}

reader_allows("SetSystemSessionProperty", resource) if {
	resource.systemSessionProperty.name in reader_session_properties
}

# Built-in functions (system.builtin) are everyone's; catalog routines are not.
reader_allows(operation, resource) if {
	operation in {"ExecuteFunction", "FilterFunctions", "ShowFunctions"}
	resource.function.catalogName == "system"
}

schema_readable(catalog, schema) if {
	catalog == served_catalog
	schema == served_schema
}

schema_readable(catalog, "information_schema") if catalog in {served_catalog, "system"}

schema_readable("system", schema) if schema in reader_system_schemas

table_readable(table) if {
	table.catalogName == served_catalog
	table.schemaName == served_schema
	table.tableName in served_tables
}

# information_schema lists only what the filters above let through.
table_readable(table) if {
	table.schemaName == "information_schema"
	table.catalogName in {served_catalog, "system"}
}

table_readable(table) if {
	table.catalogName == "system"
	table.schemaName in reader_system_schemas
}

# Batched decisions --------------------------------------------------------------------------------------------------
batch contains i if {
	input.action.operation != "FilterColumns"
	some i, resource in input.action.filterResources
	allow with input.action.resource as resource
}

# FilterColumns comes one table at a time; the answer indexes its columns.
batch contains i if {
	input.action.operation == "FilterColumns"
	some resource in input.action.filterResources
	allow with input.action.resource as resource
	some i, _ in resource.table.columns
}

# Row filters --------------------------------------------------------------------------------------------------------
rowFilters contains {"expression": readers[user]} if {
	readers[user] != ""
	table_readable(input.action.resource.table)
	input.action.resource.table.schemaName == served_schema
}
