"""What the platform and the workers share, standard library only: the contracts between them (task names,
payloads, every status and kind), the methods' defaults, the artifact formats' names, the template parser
and task shapes, and the engine's input errors. Neither Django nor torch is imported here."""
