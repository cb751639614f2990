-- The read API lists sagas in (namespace, name, created_at, uid) order with keyset paging, keeps
-- only the newest run of each name, and looks one saga up by namespace and name: this one index
-- serves all three. (Numbered after the issue that added it, so it cannot collide with
-- migrations written alongside; versions need only be unique and ordered.)
CREATE INDEX IF NOT EXISTS sagaz_sagas_listing ON sagaz_sagas (namespace, name, created_at, uid);
