-- A settlement's payment is checked by the statement that writes it (a join on the payment,
-- within the run's client), not by a foreign key: the key's per-row check took a lock on each
-- payment settled, which cost as much as the insert (a million-line run writes a million
-- settlements), and is a constraint a store sharded by client would have to co-locate.
ALTER TABLE recon_settlements DROP CONSTRAINT IF EXISTS recon_settlements_payment_id_fkey;
