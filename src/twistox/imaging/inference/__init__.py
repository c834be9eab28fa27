"""Stage `image_inference`: GPA, twist angle and the learned registry map of one plan-view image."""
