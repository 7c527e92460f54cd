-- Search past the in-memory range: tool documents with their vectors (HNSW) and BM25 term statistics.
-- discovery_router/team/search.py reads and writes these tables; every name is prefixed search_.

CREATE EXTENSION IF NOT EXISTS vector;

-- One row: the catalog-wide numbers BM25 and the vector index need.
CREATE TABLE IF NOT EXISTS search_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model text,                        -- the embedding model of search_tools.embedding (NULL: lexical only)
    dimension integer,                 -- its dimension: the HNSW index is on embedding::halfvec(dimension)
    n_docs bigint NOT NULL DEFAULT 0,  -- BM25's N
    total_length bigint NOT NULL DEFAULT 0  -- sum of document lengths in tokens: avgdl = total_length / n_docs
);
INSERT INTO search_meta DEFAULT VALUES ON CONFLICT DO NOTHING;

-- Every token ever indexed, with its document frequency (BM25's df, kept exact by every write).
CREATE TABLE IF NOT EXISTS search_terms (
    term_id integer PRIMARY KEY,
    term text NOT NULL UNIQUE,
    df integer NOT NULL CHECK (df >= 0)
);
CREATE SEQUENCE IF NOT EXISTS search_terms_id_seq OWNED BY search_terms.term_id;

-- One row per tool: the document, its BM25 term frequencies (terms[i] occurs tfs[i] times) and length,
-- and its unit vector in half precision.
CREATE TABLE IF NOT EXISTS search_tools (
    doc_id integer PRIMARY KEY,
    server text NOT NULL,
    name text NOT NULL,
    id_key text NOT NULL,          -- casefold(server/name): an exact-name query
    name_key text NOT NULL,        -- casefold(name)
    destructive boolean NOT NULL,
    length integer NOT NULL,
    terms integer[] NOT NULL,
    tfs smallint[] NOT NULL,
    doc jsonb NOT NULL,            -- description, input_schema, server_description
    embedding halfvec,
    UNIQUE (server, name)
);
CREATE SEQUENCE IF NOT EXISTS search_tools_id_seq OWNED BY search_tools.doc_id;
CREATE INDEX IF NOT EXISTS search_tools_id_key ON search_tools (id_key);
CREATE INDEX IF NOT EXISTS search_tools_name_key ON search_tools (name_key);

-- Candidate lists for BM25: for each term, the documents where it weighs most (its "champions"), best
-- first, with what their exact BM25 contribution needs (a document row never changes: a changed tool is a
-- new doc_id). Final scores are computed from search_tools.terms/tfs; these rows only choose whom to score.
CREATE TABLE IF NOT EXISTS search_postings (
    term_id integer NOT NULL,
    impact real NOT NULL,          -- tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl)) when written
    doc_id integer NOT NULL,
    tf smallint NOT NULL,
    length integer NOT NULL
);
CREATE INDEX IF NOT EXISTS search_postings_term ON search_postings (term_id, impact DESC) INCLUDE (doc_id, tf, length);
