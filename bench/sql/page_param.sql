-- page.sql with its values as parameters, as the gateway sends it: with
-- `-M prepared` PostgreSQL sees `$n` placeholders, not constants, and chooses
-- at each execution between a plan made for the values and the generic plan.
-- Against a database seeded by `actiongate-bench seed --actions 500000 --tenants 5`:
--   pgbench -n -M prepared -c 4 -j 2 -T 8 -D tenant=tenant-0 -D status=Completed -f bench/sql/page_param.sql "$PG"
-- and the same with `PGOPTIONS='-c plan_cache_mode=force_generic_plan -c jit=off'`.
\set limit 21
SELECT "actions".*, (SELECT CAST(json_agg(json_build_array(p.name, p.value) ORDER BY p.position) AS TEXT) FROM action_parameters p WHERE p.action_id = "actions"."id" AND p.tenant_id = "actions"."tenant_id") AS parameters_json, (SELECT CAST(json_agg(json_build_array(s.id, s.seq, s.app_id, s.user_name, s.status, s.previous_status, s.occurred_at, s.detail) ORDER BY s.id) AS TEXT) FROM action_states s WHERE s.action_id = "actions"."id" AND s.tenant_id = "actions"."tenant_id") AS states_json FROM actions WHERE tenant_id = :tenant AND status IN (:status) ORDER BY created_at DESC, id DESC LIMIT :limit;
