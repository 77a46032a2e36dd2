-- Each document's vector as the search cache keeps it (int8 codes with scale, rounding error and
-- fingerprint; VectorIndex.encode), a quarter of the float vector's bytes: a cache's full load
-- reads these. NULL where a row was written without them (a full load then reads the vector).
ALTER TABLE documents ADD COLUMN codes BLOB;

-- A write that changes the vector but not the codes leaves codes that no longer match: drop them.
DROP TRIGGER documents_vector_updated;
CREATE TRIGGER documents_vector_updated AFTER UPDATE OF vector ON documents
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = NEW.collection_id;
  UPDATE documents SET vector_version = COALESCE((SELECT vectors_version FROM collections WHERE collection_id = NEW.collection_id), 0),
    codes = CASE WHEN NEW.codes IS OLD.codes THEN NULL ELSE NEW.codes END
    WHERE document_id = NEW.document_id;
END;
