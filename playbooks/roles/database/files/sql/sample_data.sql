-- Deterministic sample portfolio for the lab: no random(), so every load gives the same rows.
-- Loaded once, into an empty database, as the owner role. Parameter: %(beneficiaries)s.
BEGIN;

WITH pick AS (
    SELECT ARRAY['María', 'José', 'Luis', 'Ana', 'Carlos', 'Laura', 'Andrés', 'Valentina',
                 'Juan', 'Daniela', 'Santiago', 'Camila', 'Felipe', 'Natalia', 'Diego',
                 'Paula', 'Sebastián', 'Juliana', 'Miguel', 'Sofía'] AS first_names,
           ARRAY['Rodríguez', 'Gómez', 'González', 'Martínez', 'García', 'López', 'Hernández',
                 'Sánchez', 'Ramírez', 'Pérez', 'Díaz', 'Muñoz', 'Rojas', 'Moreno', 'Jiménez',
                 'Torres', 'Vargas', 'Castro', 'Ortiz', 'Peña'] AS last_names,
           ARRAY['Bogotá', 'Medellín', 'Cali', 'Barranquilla', 'Bucaramanga', 'Cartagena',
                 'Pereira', 'Manizales', 'Pasto', 'Ibagué'] AS cities,
           ARRAY['Calle', 'Carrera', 'Avenida', 'Diagonal', 'Transversal'] AS streets
)
INSERT INTO beneficiaries (document_type, document_number, full_name, email, phone, address, city)
SELECT 'CC',
       (52000000 + i * 104729)::text,
       n.first_name || ' ' || n.last_name || ' ' || n.second_last_name,
       translate(lower(n.first_name || '.' || n.last_name), 'áéíóúñü', 'aeiounu') || i
           || '@example.com',
       '3' || lpad(mod(i::bigint * 7919 * 104729, 1000000000)::text, 9, '0'),
       n.street || ' ' || (mod(i * 7, 150) + 1) || ' # ' || (mod(i * 13, 90) + 1) || '-'
           || lpad((mod(i * 29, 99) + 1)::text, 2, '0'),
       n.city
FROM generate_series(1, %(beneficiaries)s) AS i,
     LATERAL (
         SELECT p.first_names[mod(i * 7, 20) + 1] AS first_name,
                p.last_names[mod(i * 3, 20) + 1] AS last_name,
                p.last_names[mod(i * 11 + 5, 20) + 1] AS second_last_name,
                p.cities[mod(i, 10) + 1] AS city,
                p.streets[mod(i, 5) + 1] AS street
         FROM pick AS p
     ) AS n;

-- One loan per beneficiary, two for every third one.
INSERT INTO loans (loan_number, beneficiary_id, program, disbursed_on, term_months, annual_rate,
                   amount, balance, status)
SELECT 'ICX-' || to_char(d.disbursed_on, 'YYYY') || '-' || lpad((b.n * 10 + k)::text, 6, '0'),
       b.id,
       (ARRAY['Pregrado', 'Posgrado en el país', 'Posgrado en el exterior',
              'Técnico y tecnológico', 'Idiomas'])[mod(b.n + k, 5) + 1],
       d.disbursed_on,
       (ARRAY[36, 48, 60, 72, 84])[mod(b.n * k, 5) + 1],
       (ARRAY[0.0900, 0.1050, 0.1200, 0.1350])[mod(b.n + 2 * k, 4) + 1],
       a.amount,
       a.amount,
       'current'
FROM (SELECT id, (row_number() OVER (ORDER BY document_number))::integer AS n
      FROM beneficiaries) AS b,
     generate_series(1, CASE WHEN mod(b.n, 3) = 0 THEN 2 ELSE 1 END) AS k,
     LATERAL (SELECT date '2015-01-15' + mod(b.n * 37 + k * 101, 3000) AS disbursed_on) AS d,
     LATERAL (SELECT 2000000 + mod(b.n * 7919 * k, 40) * 500000 AS amount) AS a;

-- Monthly installments up to mid 2025; every eleventh loan whose term has ended by then is
-- paid in full.
INSERT INTO payments (loan_id, paid_on, amount, channel)
SELECT l.id,
       (l.disbursed_on + make_interval(months => j))::date,
       CASE WHEN j = l.term_months
            THEN l.amount - (l.term_months - 1) * round(l.amount / l.term_months, 2)
            ELSE round(l.amount / l.term_months, 2) END,
       (ARRAY['PSE', 'bank', 'payroll'])[mod(l.m + j, 3) + 1]
FROM (SELECT id, amount, term_months, disbursed_on,
             (row_number() OVER (ORDER BY loan_number))::integer AS m
      FROM loans) AS l,
     generate_series(1, CASE WHEN mod(l.m, 11) = 0
                                  AND l.disbursed_on + make_interval(months => l.term_months)
                                      <= date '2025-06-30'
                             THEN l.term_months
                             ELSE mod(l.m * 7, 30) END) AS j
WHERE l.disbursed_on + make_interval(months => j) <= date '2025-06-30';

UPDATE loans AS l
SET balance = l.amount - s.paid,
    status = CASE WHEN l.amount - s.paid = 0 THEN 'paid_off'
                  WHEN mod(s.m, 7) = 0 THEN 'arrears'
                  ELSE 'current' END
FROM (SELECT lo.id,
             (row_number() OVER (ORDER BY lo.loan_number))::integer AS m,
             coalesce((SELECT sum(p.amount) FROM payments AS p WHERE p.loan_id = lo.id), 0)
                 AS paid
      FROM loans AS lo) AS s
WHERE s.id = l.id;

COMMIT;
