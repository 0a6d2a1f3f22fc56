
    /// The most probable label with its probability; `probabilities` holds every class in `EdgeDermSpec.labels`
    /// order; `decisions` says, per operating point name, whether the rule fired.
    struct Prediction {
        let label: String
        let probability: Float
        let probabilities: [Float]
        let decisions: [String: Bool]
    }

    /// Classifies `image`: logits / temperature -> {{ACTIVATION}} -> the most probable of `EdgeDermSpec.labels`,
    /// and the manifest's operating points applied as written (refer if P(label) >= threshold).
    func classify(_ image: CGImage) throws -> Prediction {
        let logits = try run(image)
        let top = logits.max() ?? 0
        let e = logits.map { exp(($0 - top) / EdgeDermSpec.temperature) }  // minus the max: no overflow
        let sum = e.reduce(Float(0), +)
        let probabilities = e.map { $0 / sum }
        let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
        var decisions: [String: Bool] = [:]
        for op in EdgeDermSpec.operatingPoints {
            if let i = EdgeDermSpec.labels.firstIndex(of: op.label) { decisions[op.name] = probabilities[i] >= op.threshold }
        }
        return Prediction(label: EdgeDermSpec.labels[best], probability: probabilities[best],
                          probabilities: probabilities, decisions: decisions)
    }
