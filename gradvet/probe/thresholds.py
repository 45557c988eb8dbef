"""Every number the probe's judgement turns on, in one place: the verdict, the flags of a layer,
the notes and the remedies all read them from here.

The verdict (on delta_1 / delta_L, the backward signal of the first hidden layer over the last):
  VANISHING, EXPLODING      below 1e-2 vanishing, above 1e2 exploding (a factor 100 either way
                            across the net); `diagnose` takes others as arguments.

Units that pass no gradient (`probe.dead_units`, `metrics.saturated_fraction`), judged twice,
per layer and over the hidden layers on average:
  DEAD                      a layer is flagged 'dead' (or 'inactive', on one batch) with at least
                            half its units so; ReLU has f' = 0 on about half its inputs by design,
                            so a lower bar would flag every healthy ReLU layer at some batch;
  MEAN_DEAD                 a quarter of all hidden units dead on average earns the leaky_relu
                            remedy (and inactive ones the note): the net has lost a quarter of
                            its width, whether or not any one layer crossed DEAD;
  SATURATED                 a layer is flagged 'saturated', and the net gets the remedy of smaller
                            pre-activations, with at least 60% of its (sample, unit) values in the
                            flat part (|f'(z)| < 5% of max |f'|) -- per layer and on average alike;
  MEAN_SATURATED_SATURATING for sigmoid and tanh nets (SATURATING_FAMILIES) a quarter saturated on
                            average already earns that remedy: saturation is how they fail
                            (Glorot & Bengio 2010), while a ReLU-family unit is 'saturated' only
                            where it is off.

The remedies' reading of the chain-rule factors (geometric means per hidden layer):
  SMALL_ACTIVATION_FACTOR   an activation factor below 0.5 per layer calls for another activation
                            (sigmoid' <= 0.25; tanh near saturation);
  HALF_ACTIVATION_FACTOR, WEAK_LAYER
                            an activation factor below 0.9 (about half the units pass, as ReLU)
                            with a product per layer below 0.95 calls for He init's factor 2;
  SHRINKING_WEIGHT_FACTOR   weight factors below 0.9 per layer call for the matching init;
  GROWING_WEIGHT_FACTOR     weight factors above 1.1 per layer, in an exploding net, call for a
                            smaller init or learning rate;
  DEEP                      more than 8 layers earn the residual-connection remedy.

The residual stream of a model with repeated blocks (`probe.diagnosis_blocks`; the verdict there
reads ||dL/dh|| at the first block over the last, with VANISHING and EXPLODING as above):
  BRANCH_IDENTITY           a branch_ratio ||f(x)||/||x|| below 1e-3: the block is (almost) the
                            identity, as a zero-initialised branch starts (Fixup, SkipInit);
  BRANCH_LARGE              a branch_ratio of 0.5 or more: the branch is a match for the skip,
                            the stream's variance grows by (1 + r^2) >= 1.25 per block, and
                            the remedies scale the branches by 1/sqrt(L) (a 1/sqrt(L) branch
                            has r about 1/sqrt(L), 0.14 at 50 blocks);
  GROWING_BLOCK_GAIN, SHRINKING_BLOCK_GAIN
                            a gain per block (geometric mean of block_gain) above 1.1 or below
                            0.9: the stream's backward signal grows or shrinks block by block.
"""

from __future__ import annotations

VANISHING = 1e-2
EXPLODING = 1e2

DEAD = 0.5
MEAN_DEAD = 0.25
SATURATED = 0.6
MEAN_SATURATED_SATURATING = 0.25
SATURATING_FAMILIES = ("sigmoid", "tanh")

SMALL_ACTIVATION_FACTOR = 0.5
HALF_ACTIVATION_FACTOR = 0.9
WEAK_LAYER = 0.95
SHRINKING_WEIGHT_FACTOR = 0.9
GROWING_WEIGHT_FACTOR = 1.1
DEEP = 8

BRANCH_IDENTITY = 1e-3
BRANCH_LARGE = 0.5
GROWING_BLOCK_GAIN = 1.1
SHRINKING_BLOCK_GAIN = 0.9
