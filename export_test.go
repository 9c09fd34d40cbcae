package cowdb

// Exports for the black-box tests of package cowdb_test.
var (
	// CheckPersisted checks the DESIGN §6 invariant on the durable image
	// of a closed (or checkpointed) store.
	CheckPersisted = checkPersisted
)
