"""Operations on arrays: read (feedforward) and write (update)."""
