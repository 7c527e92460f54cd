-- The state a team of router replicas shares. Applied once per database by discovery_router.team.migrate
-- (in one transaction, under an advisory lock). The "vector" extension is created by the runner first.

-- Every catalog change, in order: replicas remember the last seq they applied and catch up from it
-- (NOTIFY carries the seq too, but is lost while a replica is down).
CREATE TABLE team_changes (
    seq         bigserial PRIMARY KEY,
    source      text        NOT NULL,  -- the server's cache key: name@digest of where it lives
    server      text        NOT NULL,
    tool_count  integer     NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per server as the replica that listed it last saw it.
CREATE TABLE team_servers (
    source      text        PRIMARY KEY,
    server      text        NOT NULL,
    seq         bigint      NOT NULL REFERENCES team_changes (seq),
    tools       jsonb       NOT NULL,  -- the whole list in upstream order (tool fields only, never config)
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The same tools one per row, for people and SQL: what search indexes each of them by.
CREATE TABLE team_tools (
    source        text    NOT NULL REFERENCES team_servers (source) ON DELETE CASCADE,
    position      integer NOT NULL,
    name          text    NOT NULL,
    description   text    NOT NULL DEFAULT '',
    input_schema  jsonb   NOT NULL DEFAULT '{}'::jsonb,
    annotations   jsonb,
    document      text    NOT NULL,    -- the BM25 document text (search.text.document_text)
    PRIMARY KEY (source, name)
);

-- Embedding vectors keyed exactly as the on-disk cache keys them: model id + sha256 of the embedded text.
CREATE TABLE team_embeddings (
    model_id    text        NOT NULL,
    text_key    char(64)    NOT NULL,
    embedding   vector      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, text_key)
);

-- One audit trail for every replica: the JSONL record as written locally, plus columns to filter on.
CREATE TABLE team_audit (
    id        bigserial   PRIMARY KEY,
    time      timestamptz NOT NULL,
    server    text,
    tool      text,
    outcome   text,
    replica   text        NOT NULL,
    record    jsonb       NOT NULL
);
CREATE INDEX team_audit_time ON team_audit (time, id);
CREATE INDEX team_audit_server_time ON team_audit (server, time);

-- Spent confirmation nonces (governance/nonces.py): one "yes" runs a destructive call once on the whole team,
-- whichever replicas the client re-sends it to. Rows past expires_at are deleted now and then.
CREATE TABLE team_spent_nonces (
    nonce       text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
