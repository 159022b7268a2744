-- The SQL behind one request of bench/documents/action.graphql (one action by
-- id, with its parameters and states), as a pgbench script: the three
-- statements the gateway runs for it.
--
--   pgbench -n -M prepared -c 32 -j 2 -T 20 -D id=<uuid> -D tenant=tenant-0 -f bench/sql/action.sql "$PG"
--
-- -D id is the same action the GraphQL run reads (bench/README.md, $ID).

SELECT "actions"."id", "actions"."tenant_id", "actions"."app_id", "actions"."user_name",
       "actions"."name", "actions"."action_reason", "actions"."provider",
       "actions"."provider_version", "actions"."sub_provider", "actions"."vendor",
       "actions"."client_context", "actions"."request_fingerprint", "actions"."status",
       "actions"."error_code", "actions"."error_message", "actions"."error_subcode",
       "actions"."created_at", "actions"."last_action_at", "actions"."completed_at",
       "actions"."cancel_requested_at", "actions"."work", "actions"."due_at",
       "actions"."attempts", "actions"."lease_token", "actions"."lease_owner",
       "actions"."provider_reference"
FROM "actions"
WHERE "actions"."id" = :id::uuid AND "actions"."tenant_id" = :tenant
LIMIT 1;

SELECT "action_parameters"."action_id", "action_parameters"."position",
       "action_parameters"."tenant_id", "action_parameters"."name", "action_parameters"."value"
FROM "action_parameters"
WHERE "action_parameters"."tenant_id" = :tenant
  AND "action_parameters"."action_id" IN (:id::uuid)
ORDER BY "action_parameters"."action_id" ASC, "action_parameters"."position" ASC;

SELECT "action_states"."id", "action_states"."seq", "action_states"."action_id",
       "action_states"."tenant_id", "action_states"."app_id", "action_states"."user_name",
       "action_states"."status", "action_states"."previous_status",
       "action_states"."occurred_at", "action_states"."detail"
FROM "action_states"
WHERE "action_states"."tenant_id" = :tenant
  AND "action_states"."action_id" IN (:id::uuid)
ORDER BY "action_states"."id" ASC;
