-- The SQL behind one request of bench/documents/list.graphql (first page of a
-- tenant's COMPLETED actions, newest first, with parameters and states), as a
-- pgbench script: the page, then the two batch selects of the request's loaders.
--
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -D tenants=10 -f bench/sql/list.sql "$PG"
--
-- -M prepared is required (the gateway prepares its statements too, and :ids
-- is bound as one uuid[] parameter); -D tenants must match `seed --tenants`.
--
-- The page is the gateway's statement (every column, page size + 1 rows, to
-- learn whether a next page exists). pgbench keeps only one row of a result, so
-- the page's rows are folded into one: the ids of its first 20 rows, for the
-- batch selects, and the size of every row, which makes PostgreSQL read each
-- whole row from the heap just as the gateway's query does. The gateway binds
-- the 20 ids as `IN ($2, …, $21)`; PostgreSQL plans that as `= ANY(array)`.

\set t random(0, :tenants - 1)

SELECT (array_agg(page.id ORDER BY page.created_at DESC, page.id DESC))[1:20] AS ids,
       sum(length(page::text)) AS row_bytes
FROM (
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
    WHERE "actions"."tenant_id" = 'tenant-' || :t::text
      AND "actions"."status" IN ('Completed')
    ORDER BY "actions"."created_at" DESC, "actions"."id" DESC
    LIMIT 21
) AS page \gset

SELECT "action_parameters"."action_id", "action_parameters"."position",
       "action_parameters"."tenant_id", "action_parameters"."name", "action_parameters"."value"
FROM "action_parameters"
WHERE "action_parameters"."tenant_id" = 'tenant-' || :t::text
  AND "action_parameters"."action_id" = ANY (:ids::uuid[])
ORDER BY "action_parameters"."action_id" ASC, "action_parameters"."position" ASC;

SELECT "action_states"."id", "action_states"."seq", "action_states"."action_id",
       "action_states"."tenant_id", "action_states"."app_id", "action_states"."user_name",
       "action_states"."status", "action_states"."previous_status",
       "action_states"."occurred_at", "action_states"."detail"
FROM "action_states"
WHERE "action_states"."tenant_id" = 'tenant-' || :t::text
  AND "action_states"."action_id" = ANY (:ids::uuid[])
ORDER BY "action_states"."id" ASC;
