package trino_test

import rego.v1

import data.trino

ctx(user) := {"identity": {"user": user, "groups": []}, "softwareStack": {"trinoVersion": "476"}}

act(user, operation, resource) := {"context": ctx(user), "action": {"operation": operation, "resource": resource}}

table(catalog, schema, name) := {"table": {"catalogName": catalog, "schemaName": schema, "tableName": name}}

scores := table("iceberg", "taxi", "anomaly_scores")

raw_trips := table("iceberg", "taxi", "trips_normalised")

readers := {"analyst", "green_analyst"}

# The admin -----------------------------------------------------------------------------------------------------
test_admin_does_everything_including_maintenance if {
	every operation in {"CreateSchema", "DropTable", "InsertIntoTable", "DeleteFromTable", "ExecuteTableProcedure"} {
		trino.allow with input as act("platform_admin", operation, scores)
	}
	trino.allow with input as act("platform_admin", "SelectFromColumns", raw_trips)
	trino.allow with input as act("platform_admin", "SetCatalogSessionProperty", {"catalogSessionProperty": {"catalogName": "iceberg", "propertyName": "expire_snapshots_min_retention"}})
}

test_admin_cannot_impersonate if {
	not trino.allow with input as act("platform_admin", "ImpersonateUser", {"user": {"user": "analyst"}})
}

# Readers: what they may do ---------------------------------------------------------------------------------------
test_readers_read_the_served_tables if {
	every user in readers {
		every name in {"anomaly_scores", "window_features_current", "stream_alerts", "model_evaluations"} {
			trino.allow with input as act(user, "SelectFromColumns", table("iceberg", "taxi", name))
		}

		# the raw feature table may hold a month of a run whose scores are not committed yet: readers use the view
		not trino.allow with input as act(user, "SelectFromColumns", table("iceberg", "taxi", "window_features"))
		trino.allow with input as act(user, "ExecuteQuery", {})
		trino.allow with input as act(user, "AccessCatalog", {"catalog": {"name": "iceberg"}})
	}
}

test_readers_may_bound_their_own_query if {
	trino.allow with input as act("analyst", "SetSystemSessionProperty", {"systemSessionProperty": {"name": "query_max_execution_time"}})
}

# Readers: what they may not do -----------------------------------------------------------------------------------
test_readers_do_not_read_other_tables if {
	every user in readers {
		not trino.allow with input as act(user, "SelectFromColumns", raw_trips)
		not trino.allow with input as act(user, "SelectFromColumns", table("iceberg", "other", "anomaly_scores"))
		not trino.allow with input as act(user, "SelectFromColumns", table("iceberg", "taxi", "anomaly_scores$snapshots"))
		not trino.allow with input as act(user, "SelectFromColumns", table("system", "runtime", "queries"))
		not trino.allow with input as act(user, "AccessCatalog", {"catalog": {"name": "tpch"}})
	}
}

test_readers_change_nothing if {
	every user in readers {
		every operation in {
			"InsertIntoTable", "DeleteFromTable", "UpdateTableColumns", "TruncateTable", "DropTable", "CreateTable",
			"AddColumn", "RenameTable", "SetTableProperties", "CreateViewWithSelectFromColumns",
		} {
			not trino.allow with input as act(user, operation, scores)
		}
		not trino.allow with input as act(user, "CreateSchema", {"schema": {"catalogName": "iceberg", "schemaName": "x"}})
	}
}

# Issue 16, item 1: table maintenance and the session properties that loosen it are the admin's only.
test_readers_run_no_table_procedure if {
	every user in readers {
		every procedure in {"optimize", "expire_snapshots", "drop_extended_stats", "remove_orphan_files", "optimize_manifests"} {
			not trino.allow with input as act(user, "ExecuteTableProcedure", object.union(scores, {"function": {"functionName": procedure}}))
		}
		not trino.allow with input as act(user, "ExecuteProcedure", {"function": {"catalogName": "iceberg", "schemaName": "system", "functionName": "rollback_to_snapshot"}})
	}
}

test_readers_set_no_data_changing_session_property if {
	every user in readers {
		every property in {"expire_snapshots_min_retention", "remove_orphan_files_min_retention", "target_max_file_size"} {
			not trino.allow with input as act(user, "SetCatalogSessionProperty", {"catalogSessionProperty": {"catalogName": "iceberg", "propertyName": property}})
		}
		not trino.allow with input as act(user, "SetSystemSessionProperty", {"systemSessionProperty": {"name": "writer_scaling_min_data_processed"}})
	}
}

test_unknown_users_get_nothing if {
	not trino.allow with input as act("intruder", "ExecuteQuery", {})
	not trino.allow with input as act("intruder", "SelectFromColumns", scores)
}

test_readers_see_the_served_schema_only if {
	schemas := [{"schema": {"catalogName": "iceberg", "schemaName": name}} | some name in ["taxi", "other", "information_schema"]]
	trino.batch == {0} with input as {"context": ctx("analyst"), "action": {"operation": "FilterSchemas", "filterResources": schemas}}
	not trino.allow with input as act("analyst", "ShowTables", schemas[1])
	trino.allow with input as act("analyst", "ShowTables", schemas[0])
}

# Batches -----------------------------------------------------------------------------------------------------------
test_batch_filters_tables if {
	resources := [scores, raw_trips, table("iceberg", "taxi", "window_features_current"), table("iceberg", "taxi", "window_features")]
	batch := trino.batch with input as {"context": ctx("analyst"), "action": {"operation": "FilterTables", "filterResources": resources}}
	batch == {0, 2}
}

test_batch_filters_catalogs if {
	resources := [{"catalog": {"name": "iceberg"}}, {"catalog": {"name": "tpch"}}, {"catalog": {"name": "system"}}]
	batch := trino.batch with input as {"context": ctx("analyst"), "action": {"operation": "FilterCatalogs", "filterResources": resources}}
	batch == {0, 2}
}

test_batch_filters_columns_of_one_table if {
	allowed := {"table": object.union(scores.table, {"columns": ["trip_type", "score", "run_id"]})}
	denied := {"table": object.union(raw_trips.table, {"columns": ["fare_amount"]})}
	trino.batch == {0, 1, 2} with input as {"context": ctx("analyst"), "action": {"operation": "FilterColumns", "filterResources": [allowed]}}
	count(trino.batch) == 0 with input as {"context": ctx("analyst"), "action": {"operation": "FilterColumns", "filterResources": [denied]}}
}

# Row filters -------------------------------------------------------------------------------------------------------
test_green_analyst_reads_green_trips_only if {
	trino.rowFilters == {{"expression": "trip_type = 'green'"}} with input as act("green_analyst", "GetRowFilters", scores)
}

test_others_read_unfiltered if {
	count(trino.rowFilters) == 0 with input as act("analyst", "GetRowFilters", scores)
	count(trino.rowFilters) == 0 with input as act("platform_admin", "GetRowFilters", scores)
}
