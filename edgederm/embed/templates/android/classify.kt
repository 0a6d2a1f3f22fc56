
    /** A decision rule from the manifest: refer when probabilities[classIndex] >= threshold. */
    data class OperatingPoint(val name: String, val classIndex: Int, val threshold: Float)

    /** Label and probability of one class; [probabilities] holds every class in LABELS order;
     *  [decisions] says, per Spec.OPERATING_POINTS name, whether the rule fired. */
    data class Prediction(val label: String, val probability: Float, val probabilities: FloatArray,
                          val decisions: Map<String, Boolean>)

    /** Classifies [bitmap]: logits / Spec.TEMPERATURE -> {{ACTIVATION}} -> the most probable of Spec.LABELS,
     *  and the manifest's operating points applied as written. */
    fun classify(bitmap: Bitmap): Prediction {
        val logits = run(bitmap)
        val top = logits.maxOrNull() ?: 0f
        val e = FloatArray(logits.size) { exp((logits[it] - top) / Spec.TEMPERATURE) }  // minus the max: no overflow
        val sum = e.sum()
        val probabilities = FloatArray(e.size) { e[it] / sum }
        val best = probabilities.indices.maxByOrNull { probabilities[it] } ?: 0
        val decisions = Spec.OPERATING_POINTS.associate { it.name to (probabilities[it.classIndex] >= it.threshold) }
        return Prediction(Spec.LABELS[best], probabilities[best], probabilities, decisions)
    }
