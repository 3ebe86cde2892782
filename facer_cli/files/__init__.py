"""Files facer reads from and writes for a user: bounded safe reads, atomic private writes, and
the .npy vector format read without pickle."""
