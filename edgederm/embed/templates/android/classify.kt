
    /** Label and probability of one class; [probabilities] holds every class in LABELS order. */
    data class Prediction(val label: String, val probability: Float, val probabilities: FloatArray)

    /** Classifies [bitmap]: logits -> {{ACTIVATION}} -> the most probable of Spec.LABELS. */
    fun classify(bitmap: Bitmap): Prediction {
        val logits = run(bitmap)
        val top = logits.maxOrNull() ?: 0f
        val e = FloatArray(logits.size) { exp(logits[it] - top) }  // minus the max: no overflow
        val sum = e.sum()
        val probabilities = FloatArray(e.size) { e[it] / sum }
        val best = probabilities.indices.maxByOrNull { probabilities[it] } ?: 0
        return Prediction(Spec.LABELS[best], probabilities[best], probabilities)
    }
