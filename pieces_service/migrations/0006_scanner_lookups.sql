-- migrate: no-transaction
-- Scanner lookups: the list's `barcode` and `piece_id` filters (exact match) without a
-- project, each served by an index of the tenant's values. (With a project, piece_id is
-- served by the natural key, (company_guid, project_guid, piece_id).)
--
-- Built CONCURRENTLY (writes go on); every statement can run again (docs/migrations.md).

DROP INDEX CONCURRENTLY IF EXISTS pieces_barcode_idx;
CREATE INDEX CONCURRENTLY pieces_barcode_idx ON pieces (company_guid, barcode)
    WHERE barcode IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS pieces_piece_id_idx;
CREATE INDEX CONCURRENTLY pieces_piece_id_idx ON pieces (company_guid, piece_id);
