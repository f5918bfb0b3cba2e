-- SCIM provisioning: the Users and Groups an identity provider pushes, kept as it sent them
-- (the resource's JSON, without its read-only parts) beside the directory's people rows that
-- are derived from them. A disabled user (active false) keeps its resource and has no person.
CREATE TABLE scim_resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX scim_resources_kind ON scim_resources (kind, created_at, id);

-- The values filters look up by equality (userName, externalId, displayName, emails.value),
-- lowercased; the filter itself is then applied to the few resources found.
CREATE TABLE scim_lookup (
    resource_id TEXT NOT NULL REFERENCES scim_resources (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, value, resource_id)
);
CREATE INDEX scim_lookup_resource ON scim_lookup (resource_id);

-- Group memberships, both ways: a group's members (with the display name the provider sent),
-- and the groups a person's row carries.
CREATE TABLE scim_members (
    group_id TEXT NOT NULL REFERENCES scim_resources (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    display TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_members_user ON scim_members (user_id, group_id);
