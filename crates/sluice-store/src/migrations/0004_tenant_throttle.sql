-- A tenant's throttle budget (messages and fuel per second over all its bindings), as JSON the
-- pipeline defines and checks. NULL: no tenant-wide budget.
ALTER TABLE tenants ADD COLUMN throttle_json TEXT;
