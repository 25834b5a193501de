-- The source a version was built from, when the backend built it (a JavaScript codec uploaded
-- as source): the editor opens it again. NULL for components uploaded as bytes.
ALTER TABLE module_versions ADD COLUMN source_language TEXT
    CHECK (source_language IN ('javascript', 'rust'));
ALTER TABLE module_versions ADD COLUMN source TEXT
    CHECK ((source IS NULL) = (source_language IS NULL));
