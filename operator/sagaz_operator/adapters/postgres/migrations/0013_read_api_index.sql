-- The read API lists sagas by (namespace, name, uid) with keyset paging, and looks one saga up
-- by namespace and name: one index serves both. (Numbered after the issue that added it, so it
-- cannot collide with migrations written alongside; versions only need to be unique.)
CREATE INDEX IF NOT EXISTS sagaz_sagas_by_name ON sagaz_sagas (namespace, name, uid);
