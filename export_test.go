package cowdb

// Exports for the black-box tests of package cowdb_test.
var (
	// CheckPersisted runs the full check (DB.Check's) on the durable image
	// of a store, closed or checkpointed, without taking its lock.
	CheckPersisted = checkPersisted
)
