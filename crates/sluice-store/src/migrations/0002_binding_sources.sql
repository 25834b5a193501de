-- Where a binding's messages come from (MQTT topic filters, NATS subjects), kept as JSON like
-- its sinks: the connectors define and check the shape.
ALTER TABLE bindings ADD COLUMN sources_json TEXT NOT NULL DEFAULT '[]';
