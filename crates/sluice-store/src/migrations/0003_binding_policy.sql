-- A binding's limit policies (throttle, quarantine, restart), kept as JSON like its sources and
-- sinks: the pipeline defines and checks the shape. `paused` survives restarts.
ALTER TABLE bindings ADD COLUMN policy_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE bindings ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
