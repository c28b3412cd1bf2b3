-- Loan portfolio (cartera) schema, version 1. Run once, as the owner role, in one transaction.
BEGIN;

CREATE TABLE beneficiaries (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_type   text NOT NULL DEFAULT 'CC' CHECK (document_type IN ('CC', 'TI', 'CE', 'PA')),
    document_number text NOT NULL UNIQUE CHECK (document_number ~ '^[0-9]{6,10}$'),
    full_name       text NOT NULL CHECK (char_length(full_name) BETWEEN 3 AND 120),
    email           text NOT NULL CHECK (char_length(email) BETWEEN 6 AND 254),
    phone           text NOT NULL CHECK (phone ~ '^[0-9]{10}$'),
    address         text NOT NULL CHECK (char_length(address) BETWEEN 5 AND 200),
    city            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE loans (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    loan_number    text NOT NULL UNIQUE,
    beneficiary_id integer NOT NULL REFERENCES beneficiaries (id),
    program        text NOT NULL,
    disbursed_on   date NOT NULL,
    term_months    integer NOT NULL CHECK (term_months > 0),
    annual_rate    numeric(5, 4) NOT NULL CHECK (annual_rate >= 0),
    amount         numeric(14, 2) NOT NULL CHECK (amount > 0),
    balance        numeric(14, 2) NOT NULL CHECK (balance >= 0),
    status         text NOT NULL CHECK (status IN ('current', 'arrears', 'paid_off'))
);
CREATE INDEX loans_beneficiary_idx ON loans (beneficiary_id);

CREATE TABLE payments (
    id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    loan_id integer NOT NULL REFERENCES loans (id),
    paid_on date NOT NULL,
    amount  numeric(14, 2) NOT NULL CHECK (amount > 0),
    channel text NOT NULL CHECK (channel IN ('PSE', 'bank', 'payroll'))
);
CREATE INDEX payments_loan_idx ON payments (loan_id);

INSERT INTO schema_version (version) VALUES (1);

COMMIT;
