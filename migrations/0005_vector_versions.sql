-- Version stamps for the per-isolate search cache (src/embed/search.ts). Every change to a
-- document's vector bumps its collection's vectors_version and stamps the document with the new
-- value; a deleted document leaves a tombstone with its stamp. A cache that has seen version v
-- catches up by reading the documents and tombstones stamped after v. Triggers do the stamping so
-- that every write path, present or future, bumps the version in the same transaction as the write.
ALTER TABLE collections ADD COLUMN vectors_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN vector_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_vector_version ON documents (collection_id, vector_version);
-- A full load pages a collection's documents by id.
CREATE INDEX documents_collection_id ON documents (collection_id, document_id);

CREATE TABLE document_tombstones (
  collection_id TEXT NOT NULL,
  vector_version INTEGER NOT NULL,
  document_id TEXT NOT NULL,
  PRIMARY KEY (collection_id, vector_version, document_id)
);

CREATE TRIGGER documents_vector_inserted AFTER INSERT ON documents
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = NEW.collection_id;
  UPDATE documents SET vector_version = COALESCE((SELECT vectors_version FROM collections WHERE collection_id = NEW.collection_id), 0)
    WHERE document_id = NEW.document_id;
END;

-- Only a change of the vector matters to search: cluster ids and taxonomy labels do not bump.
CREATE TRIGGER documents_vector_updated AFTER UPDATE OF vector ON documents
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = NEW.collection_id;
  UPDATE documents SET vector_version = COALESCE((SELECT vectors_version FROM collections WHERE collection_id = NEW.collection_id), 0)
    WHERE document_id = NEW.document_id;
END;

-- A collection being deleted goes first, so its documents leave no tombstones. Tombstones older
-- than 50 000 versions are dropped: a cache that far behind reloads in full (TOMBSTONE_WINDOW).
CREATE TRIGGER documents_vector_deleted AFTER DELETE ON documents
WHEN EXISTS (SELECT 1 FROM collections WHERE collection_id = OLD.collection_id)
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = OLD.collection_id;
  INSERT INTO document_tombstones (collection_id, vector_version, document_id)
    VALUES (OLD.collection_id, (SELECT vectors_version FROM collections WHERE collection_id = OLD.collection_id), OLD.document_id);
  DELETE FROM document_tombstones WHERE collection_id = OLD.collection_id
    AND vector_version <= (SELECT vectors_version FROM collections WHERE collection_id = OLD.collection_id) - 50000;
END;
