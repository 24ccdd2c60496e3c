//! Hostile input: bad policy, snapshot and plan files are each refused with an error naming file and position, and nothing is written.
