"""Every figure the 2018 study gives, each with the section of its report that gives it.

The study: "Landmark Image Recognition Report" (Machine Learning Engineering Nanodegree,
May 30, 2018), /work/shared/study/landmark-recognition-report-2018.txt in this workplace.
Notebooks, ``models``, ``train``, ``evaluate`` and ``report.content`` read the study's numbers
from here and from nowhere else.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- Data and Exploration

TRAIN_ROWS = 1_225_029  # Data and Exploration: "The training data consists of 1,225,029 images"
TRAIN_LANDMARKS = 14_951  # Data and Exploration: "14,951 landmark categories"
TEST_ROWS = 117_703  # Data and Exploration: "The original testing data consists of 117,703 images"
N_IMAGES = 5000  # Data and Exploration: "I only utilized the first 5000 images" (of train and of test)
N_LANDMARKS = 2286  # Data and Exploration: "the training data contains 2,286 unique landmarks"
SINGLE_IMAGE_LANDMARKS = 159  # Data and Exploration: "There are 159 landmarks that have a single image"
IMAGE_SIZE = 250  # Data and Exploration: "scaled down to a size of 250 by 250 pixels" (aspect ratio not kept)
TOP_K = 15  # Data and Exploration, Figures 2 and 3: the most frequent landmarks (fifteen bars)

# --------------------------------------------------------------------------- Algorithms and Techniques, Preprocessing

EMPTY_FOLDERS_REMOVED = 12  # Algorithms and Techniques: "I found twelve landmark directories that were empty"
FAILED = 33  # Data Preprocessing: "Out of the 5000 images ... a total of 33 that were deleted"
FETCHED = N_IMAGES - FAILED  # Data Preprocessing: the images left for training (4,967)
NUM_CLASSES = N_LANDMARKS - EMPTY_FOLDERS_REMOVED  # the classes trained on: 2,274 landmark folders left

# --------------------------------------------------------------------------- Benchmark

RESNET50_PARAMS = 25_636_712  # Benchmark: ResNet-50 "with 25,636,712 parameters" (Keras' 1000-class top)
RESNET50_LAYERS = 168  # Benchmark: "a model depth of 168 layers"
RESNET50_IMAGENET_TOP5 = 0.929  # Benchmark: "a top-5 accuracy score of 92.9%" on ImageNet

# --------------------------------------------------------------------------- Implementation

FIRST_TRY_FILTERS = (60, 120, 250, 600)  # Implementation: "I had set the number of filters ... to 60, 120, 250, 600"
FIRST_TRY_PARAMS = 60_000_000  # Implementation: "resulting in approximately 60 million parameters"
RES_INCEP_FILTERS = (40, 60, 75, 80)  # Implementation: "I decided to change the filters to 40, 60, 75, and 80"
RES_INCEP_PARAMS = 2_200_000  # Implementation: "a total number of parameters around 2.2 million"
RES_INCEP_BLOCKS = 10  # Implementation: "a single convolutional layer prior to ten residual block operations"
RES_INCEP_EPOCHS = 30  # Implementation: "finally finishing at 30 epochs that took ten hours to train"
RES_INCEP_BATCH_SIZE = 8  # Implementation: "I had to lower the batch size to 8"
RES_INCEP_OPTIMIZER = "sgd"  # Refinement: "changed the optimizer from RMSprop to SGD"
RES_INCEP_TRAINING_HOURS = 10.0  # Implementation: "30 epochs that took ten hours to train"
RES_INCEP_VAL_TOP1 = 0.0589  # Implementation: "The new accuracy score resulted in a 5.89%"
RESNET50_EPOCHS = 35  # Implementation: "RMSprop as the optimizer, 35 epochs, and a batch size of 55"
RESNET50_BATCH_SIZE = 55  # Implementation: idem
RESNET50_OPTIMIZER = "rmsprop"  # Implementation: idem
RESNET50_WEIGHTS = "imagenet"  # Benchmark: "with the model weights set to 'ImageNet'"
RESNET50_TRAINING_HOURS = 0.5  # Implementation: "It took approximately 30 minutes for the model to be trained"
RESNET50_VAL_TOP1 = 0.0402  # Implementation: "resulting in a validation testing accuracy of 4.02%"
THRESHOLD = 0.045  # Implementation: "a landmark id if the probability score was greater than 4.5%"

# --------------------------------------------------------------------------- Refinement

INITIAL_VAL_TOP1 = 0.00009  # Refinement: "My initial model had a terrible accuracy score of around 0.009%"
SECOND_VAL_TOP1 = 0.0225  # Refinement: "the accuracy score increased slightly up to around 2.25%"
AUGMENTED_VAL_TOP1 = 0.0455  # Refinement: with augmentation "the resulting accuracy score was ... 4.55%"
PROPOSED_MIN_IMAGES = 5  # Improvement: "any landmarks with less than 5 images are deleted"

# --------------------------------------------------------------------------- Justification

EXAMPLE_IMAGES = 10  # Justification: "I ran the same 10 testing images through both my model and the ResNet-50"
RES_INCEP_ANSWERED_SHARE = 0.6  # Justification: "my Res-Incep model outputted a landmark for 60% of the images"
RESNET50_ANSWERED_SHARE = 0.0  # Justification: "compared to the ResNet model that output none"
RES_INCEP_SECONDS_PER_IMAGE = 33.14  # Justification: "each image to run through my model took 33.14 seconds"
RESNET50_SECONDS_PER_IMAGE = 24.37  # Justification: "the ResNet-50 model took 24.37 seconds"

# --------------------------------------------------------------------------- Visualization

STEM_FILTERS = 35  # Visualization, Figure 15: "Conv-Layer1 with 35 filters"
FEATURE_LAYERS = (2, 8, 24)  # Visualization, Figure 16: "the convolutional layers 2, 8, and 24"
FEATURE_CHANNELS = 10  # Visualization, Figure 16: "the first 10 filters in each layer"

# --------------------------------------------------------------------------- by model (train and evaluate tables)

RESULTS = {
    "res_incep": {
        "params": RES_INCEP_PARAMS,
        "input_size": IMAGE_SIZE,
        "epochs": RES_INCEP_EPOCHS,
        "batch_size": RES_INCEP_BATCH_SIZE,
        "optimizer": RES_INCEP_OPTIMIZER,
        "val_top1": RES_INCEP_VAL_TOP1,
        "training_hours": RES_INCEP_TRAINING_HOURS,
    },
    "resnet50": {
        "params": RESNET50_PARAMS,
        "input_size": IMAGE_SIZE,
        "epochs": RESNET50_EPOCHS,
        "batch_size": RESNET50_BATCH_SIZE,
        "optimizer": RESNET50_OPTIMIZER,
        "val_top1": RESNET50_VAL_TOP1,
        "training_hours": RESNET50_TRAINING_HOURS,
        "weights": RESNET50_WEIGHTS,
    },
}
"""What the study reports for each of its two models (Implementation), as ``train.comparison_table`` lists it."""

SECONDS_PER_IMAGE = {"res_incep": RES_INCEP_SECONDS_PER_IMAGE, "resnet50": RESNET50_SECONDS_PER_IMAGE}
"""Average seconds per test image (Justification), as ``evaluate.timing_table`` sets it beside this run's."""

ANSWERED_SHARE = {"res_incep": RES_INCEP_ANSWERED_SHARE, "resnet50": RESNET50_ANSWERED_SHARE}
"""Share of its ten example images each model answered at the 4.5% threshold (Justification)."""
