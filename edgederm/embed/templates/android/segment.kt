
    /** Lesion probability per pixel of the fitted picture (INPUT_WIDTH x INPUT_HEIGHT, row-major). */
    class Mask(val width: Int, val height: Int, val probability: FloatArray) {
        fun isLesion(x: Int, y: Int): Boolean = probability[y * width + x] > Spec.THRESHOLD

        /** A transparent bitmap with lesion pixels in [color]; draw it scaled over [fit] of the same photo. */
        fun overlay(color: Int = Color.argb(110, 255, 0, 0)): Bitmap {  // display colour, not a model number
            val argb = IntArray(width * height) { if (probability[it] > Spec.THRESHOLD) color else Color.TRANSPARENT }
            return Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
        }
    }

    /** Segments [bitmap]: one logit per pixel -> {{ACTIVATION}} -> lesion where above Spec.THRESHOLD. */
    fun segment(bitmap: Bitmap): Mask {
        val logits = run(bitmap)  // [1, H, W, 1] and [1, 1, H, W] share this memory order
        val probability = FloatArray(logits.size) { 1f / (1f + exp(-logits[it])) }
        return Mask(Spec.INPUT_WIDTH, Spec.INPUT_HEIGHT, probability)
    }
