-- Writing a document's vector unchanged (a retried object_create, a rebuild of unchanged text) is
-- no change: it must neither bump the collection's vectors_version (every cache would catch up,
-- then reload past 2 000 such writes) nor drop the codes the same write stored.
DROP TRIGGER documents_vector_updated;
CREATE TRIGGER documents_vector_updated AFTER UPDATE OF vector ON documents
WHEN NEW.vector IS NOT OLD.vector
BEGIN
  UPDATE collections SET vectors_version = vectors_version + 1 WHERE collection_id = NEW.collection_id;
  UPDATE documents SET vector_version = COALESCE((SELECT vectors_version FROM collections WHERE collection_id = NEW.collection_id), 0),
    codes = CASE WHEN NEW.codes IS OLD.codes THEN NULL ELSE NEW.codes END
    WHERE document_id = NEW.document_id;
END;
