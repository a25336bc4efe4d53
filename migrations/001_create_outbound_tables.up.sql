-- Tables of the outbound library. The statements are unqualified: Migrate runs
-- them with search_path set to the configured schema, and so can any external
-- migration tool (SET search_path TO cairnloop; before this file).

CREATE TABLE bulk_envelopes (
    id uuid PRIMARY KEY,
    template_id text NOT NULL,
    rendered_body text NOT NULL,
    recipient_conversation_ids bigint[] NOT NULL,
    count integer NOT NULL CHECK (count > 0),
    effective_cap integer NOT NULL CHECK (effective_cap > 0),
    requested_by text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL CHECK (status IN ('submitted', 'refused_cap_exceeded', 'cancelled')),
    refused_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(recipient_conversation_ids) = count)
);

CREATE INDEX bulk_envelopes_requested_at_idx ON bulk_envelopes (requested_at);
CREATE INDEX bulk_envelopes_template_id_idx ON bulk_envelopes (template_id);

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    conversation_id bigint NOT NULL CHECK (conversation_id > 0),
    role text NOT NULL DEFAULT 'system_outbound' CHECK (role = 'system_outbound'),
    template_id text NOT NULL CHECK (template_id <> ''),
    content text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'discarded', 'cancelled')),
    -- A correlation key, deliberately without a foreign key: Trigger accepts
    -- any id, so a host may use it as a campaign key too.
    bulk_envelope_id uuid,
    metadata jsonb NOT NULL DEFAULT '{}',
    job_id bigint,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Dedup: at most one live message per (conversation, template, envelope), a
-- missing envelope counting as one value. Cancelled and discarded messages
-- free their key.
CREATE UNIQUE INDEX messages_dedup_key_idx ON messages (
    conversation_id,
    template_id,
    coalesce(bulk_envelope_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE status IN ('pending', 'sent', 'failed');

CREATE INDEX messages_bulk_envelope_id_idx ON messages (bulk_envelope_id) WHERE bulk_envelope_id IS NOT NULL;
CREATE INDEX messages_job_id_idx ON messages (job_id);

CREATE TABLE audit_events (
    id uuid PRIMARY KEY,
    action text NOT NULL,
    actor text,
    metadata jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
