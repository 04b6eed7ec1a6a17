-- Webhooks: each workspace registers endpoints; every published event of a subscribed type is
-- delivered to each, signed, retried with backoff for a day, then marked failed.
CREATE TABLE webhooks (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url           text NOT NULL,
    event_types   text[] NOT NULL,          -- empty: every type
    secret_sealed bytea NOT NULL,           -- the signing secret, sealed like a credential
    key_version   integer NOT NULL,         -- the workspace key version it is sealed under
    last_pos      bigint NOT NULL,          -- feed position up to which deliveries exist
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    UNIQUE (workspace_id, id)
);

CREATE TABLE webhook_deliveries (
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_pos       bigint NOT NULL,
    workspace_id    uuid NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_status     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (webhook_id, event_pos)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
