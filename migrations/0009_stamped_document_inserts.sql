-- The upsert of object_create's documents (upsertDocumentRows) stamps the rows it inserts with
-- their collection's next vectors_version itself, and then raises the collection's version to
-- the highest stamp, once for the whole batch, in the same transaction. The insert trigger
-- rewrote each new row and bumped the collection once per row: three of the nine rows a
-- document wrote. It still stamps any insert that does not stamp itself (vector_version 0, the
-- column's default), so every other write path keeps bumping the version with its write.
DROP TRIGGER documents_vector_inserted;
CREATE TRIGGER documents_vector_inserted AFTER INSERT ON documents
WHEN NEW.vector_version = 0
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = NEW.collection_id;
  UPDATE documents SET vector_version = COALESCE((SELECT vectors_version FROM collections WHERE collection_id = NEW.collection_id), 0)
    WHERE document_id = NEW.document_id;
END;
