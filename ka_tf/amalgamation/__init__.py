"""Knowledge amalgamation: the Amalgamator (custom train_step), the student builder, the
branch-point rule, the end-to-end job (:func:`ka_tf.amalgamation.run.amalgamate`) and its report."""
