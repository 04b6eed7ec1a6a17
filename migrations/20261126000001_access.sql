-- API keys carry a role (a named bundle of scopes) or an explicit list of scopes, checked on
-- every request. Keys made before roles existed could do everything: they become owners, so
-- they keep working exactly as before.
ALTER TABLE api_keys ADD COLUMN role text CHECK (role IN ('owner', 'admin', 'operator', 'analyst', 'billing'));
UPDATE api_keys SET role = 'owner', scopes = '{}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_or_scopes CHECK ((role IS NULL) <> (cardinality(scopes) = 0));

-- The audit log refuses TRUNCATE as well as UPDATE and DELETE.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
